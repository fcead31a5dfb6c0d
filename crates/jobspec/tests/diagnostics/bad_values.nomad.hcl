job "bad-values" {
  priority = "high"

  group "g" {
    count = -1

    restart {
      delay = 15
      mode  = "sometimes"
    }

    task "t" {
      driver       = "exec"
      kill_timeout = "5 minutes"
      leader       = "yes"

      resources {
        memory = "lots"
      }

      config {
        command = "/bin/true"
      }
    }
  }
}

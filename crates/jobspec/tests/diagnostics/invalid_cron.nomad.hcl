job "nightly" {
  type = "batch"

  periodic {
    cron = "0 25 * * *"
  }

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/nightly"
      }
    }
  }
}

job "many" {
  type = "serverless"

  group "g" {
    task "t" {
      resources {
        memory     = 5
        memory_max = 4
      }
    }

    task "u/v" {
      driver = "exec"
      lifecycle {
        hook = "sometime"
      }
      config {
        command = "/bin/true"
      }
    }
  }

  group "empty" {}
}

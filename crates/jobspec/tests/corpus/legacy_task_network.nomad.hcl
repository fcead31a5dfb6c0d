# The older task-level network inside resources, still accepted.
job "legacy" {
  group "g" {
    task "t" {
      driver = "exec"

      resources {
        cpu    = 200
        memory = 128

        network {
          mbits = 10

          port "http" {}

          port "admin" {
            static = 9999
          }
        }
      }

      service {
        port = "http"
        provider = "nomad"
      }

      config {
        command = "/bin/app"
      }
    }
  }
}

job "unknowns" {
  group "g" {
    task "t" {
      driver = "docker"

      resource {
        cpu = 100
      }

      service {
        name = "svc"

        connect {
          sidecar_service {}
        }
      }

      config {
        image = "x"
      }
    }

    colour = "blue"
  }

  job "nested" {}
}

output "x" {}

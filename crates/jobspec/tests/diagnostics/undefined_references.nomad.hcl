job "refs" {
  group "g" {
    network {
      port "http" {}
    }

    service {
      name     = "web"
      port     = "https"
      provider = "nomad"

      check {
        type = "http"
      }
    }

    task "t" {
      driver = "docker"

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      template {
        data = "x"
      }

      artifact {
        mode = "folder"
      }

      config {
        image = "x"
      }
    }
  }
}

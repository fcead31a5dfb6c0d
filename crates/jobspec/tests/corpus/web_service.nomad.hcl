# A typical web service: docker task, a dynamic port, a service with an
# HTTP check, and a rolling update.
job "storefront" {
  datacenters = ["us-east-1a", "us-east-1b"]
  type        = "service"

  update {
    max_parallel     = 2
    min_healthy_time = "15s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "frontend" {
    count = 3

    network {
      port "http" {
        to = 3000
      }
    }

    service {
      name     = "storefront-web"
      port     = "http"
      provider = "nomad"
      tags     = ["web", "v2"]

      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "node" {
      driver = "docker"

      config {
        image = "example/storefront:2.4.1"
        ports = ["http"]
      }

      resources {
        cpu    = 250
        memory = 256
      }
    }
  }
}

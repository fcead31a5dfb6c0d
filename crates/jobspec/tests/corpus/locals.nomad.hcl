# Locals may refer to each other in any order, and to variables.
variable "service" {
  default = "ledger"
}

locals {
  full_image = "${local.registry}/${var.service}:${local.version}"
  tags       = [for tag in ["a", "b"] : "${var.service}-${tag}"]
}

locals {
  registry = "registry.example.com"
  version  = "2024.03"
  ports    = { http = 8080, grpc = 9090 }
}

job "ledger" {
  group "app" {
    network {
      port "http" {
        to = local.ports.http
      }
      port "grpc" {
        to = local.ports["grpc"]
      }
    }

    service {
      name     = var.service
      port     = "http"
      provider = "nomad"
      tags     = local.tags
    }

    task "server" {
      driver = "docker"

      config {
        image = local.full_image
        ports = keys(local.ports)
      }
    }
  }
}

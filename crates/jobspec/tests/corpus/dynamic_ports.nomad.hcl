# Ports generated from a map with a dynamic block.
locals {
  ports = {
    http    = 8080
    metrics = 9102
    admin   = 9901
  }
}

job "dynamic-ports" {
  group "proxy" {
    network {
      mode = "bridge"

      dynamic "port" {
        for_each = local.ports
        labels   = [port.key]

        content {
          to = port.value
        }
      }
    }

    task "proxy" {
      driver = "docker"

      config {
        image = "example/proxy:1"
        ports = keys(local.ports)
      }
    }
  }
}

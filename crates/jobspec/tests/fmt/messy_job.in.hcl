# A job written in a hurry: tabs, uneven indentation and loose spacing.
variable "image" {
type = string
      default="nginx:1.27"   # trailing comment stays
}

job "web" {
	datacenters=["dc1","dc2"]
	type = "service"
  // group-level settings follow

    group "frontend" {
  count=3

  network {
     port "http" { to = 8080 }
     port "metrics" {}
  }

      task "nginx" {
        driver = "docker"
        config {
        image = var.image
        ports = ["http"]
        args = [
        "--listen", "${NOMAD_PORT_http}",
          "--verbose",
        ]
        }
        env {
          LOG_LEVEL="debug"
          UPSTREAM_ADDRESS = "10.0.0.1:9000"
          X = "1"
        }
        template {
        destination = "local/site.conf"
        data = <<-EOT
            server {
              listen {{ env "NOMAD_PORT_http" }};
            }
        EOT
        }
        /* resources block:
             sized for the smallest node */
        resources {
        cpu = 200
        memory = 128
        }
      }
    }
}



# HCL template directives inside strings and heredocs, with strip markers.
variable "upstreams" {
  default = ["10.0.0.1:80", "10.0.0.2:80"]
}

variable "tls" {
  default = true
}

job "directives" {
  group "g" {
    task "t" {
      driver = "docker"

      config {
        image = "haproxy:2.9"
      }

      template {
        destination = "local/haproxy.cfg"
        data        = <<-EOT
          backend app
          %{ for idx, addr in var.upstreams ~}
            server s${idx} ${addr} check
          %{ endfor ~}
          %{ if var.tls }bind :443 ssl%{ else }bind :80%{ endif }
        EOT
      }

      env {
        MODE = "%{ if var.tls }secure%{ else }plain%{ endif }"
        LIST = "%{ for u in var.upstreams }[${u}]%{ endfor }"
      }
    }
  }
}

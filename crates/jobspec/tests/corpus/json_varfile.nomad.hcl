# Variables from a JSON var file (see the .varfile.json beside this file).
variable "tags" {
  type = list(string)
}

variable "limits" {
  type = map(number)
}

job "json-vars" {
  group "g" {
    service {
      name     = "json-vars"
      provider = "nomad"
      tags     = var.tags
    }

    task "t" {
      driver = "exec"

      resources {
        cpu    = var.limits["cpu"]
        memory = var.limits.memory
      }

      config {
        command = "/bin/app"
      }
    }
  }
}

# Complex variable types, overridden from the command line (see the .vars file).
variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "limits" {
  type = object({
    cpu    = number
    memory = number
    burst  = optional(number)
  })
  default = {
    cpu    = 500
    memory = 256
  }
}

variable "labels" {
  type    = map(string)
  default = {}
}

variable "count" {
  type    = number
  default = 1
}

job "typed" {
  datacenters = var.datacenters

  group "g" {
    count = var.count

    task "t" {
      driver = "docker"

      config {
        image = "example/typed:1"
      }

      meta = var.labels

      resources {
        cpu        = var.limits.cpu
        memory     = var.limits.memory
        memory_max = var.limits.burst == null ? 0 : var.limits.burst
      }
    }
  }
}

# Values from a var file (see the .varfile.hcl beside this file), with a
# command-line value winning over it (see the .vars file).
variable "image" {
  type = string
}

variable "memory" {
  type = number
}

variable "regions" {
  type    = list(string)
  default = []
}

job "from-varfile" {
  region = length(var.regions) > 0 ? var.regions[0] : "global"

  group "g" {
    task "t" {
      driver = "docker"

      config {
        image = var.image
      }

      resources {
        memory = var.memory
      }
    }
  }
}

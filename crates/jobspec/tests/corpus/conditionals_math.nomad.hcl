# Arithmetic, comparison and conditional expressions.
variable "env" {
  default = "prod"
}

variable "base_memory" {
  default = 256
}

locals {
  is_prod = var.env == "prod"
  factor  = local.is_prod ? 4 : 1
}

job "sizing" {
  priority = local.is_prod ? 80 : 40

  group "g" {
    count = local.factor * 2 - 1

    task "t" {
      driver = "docker"

      config {
        image = "example/sized:1"
      }

      resources {
        cpu    = 100 * local.factor + 50
        memory = var.base_memory * local.factor
      }

      env {
        HALF      = var.base_memory / 2
        REMAINDER = 17 % 5
        NEGATIVE  = -3 + 1
        CHECK     = !local.is_prod || var.base_memory >= 128
        BIG       = 3 > 2 && 2 <= 2
        PRECISE   = 7 / 2
      }
    }
  }
}

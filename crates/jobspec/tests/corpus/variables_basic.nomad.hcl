# Variables with defaults, used across the job.
variable "image_tag" {
  type        = string
  default     = "1.8.0"
  description = "Which release to run"
}

variable "replicas" {
  type    = number
  default = 2
}

variable "debug" {
  type    = bool
  default = false
}

job "catalog" {
  group "api" {
    count = var.replicas

    task "server" {
      driver = "docker"

      config {
        image = "example/catalog:${var.image_tag}"
        args  = var.debug ? ["--verbose"] : []
      }

      env {
        DEBUG = var.debug
      }
    }
  }
}

# Validation rules on variables; the values given pass them.
variable "environment" {
  type    = string
  default = "staging"

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "The environment must be staging or production."
  }
}

variable "port" {
  type    = number
  default = 8080

  validation {
    condition     = var.port > 1024 && var.port < 65536
    error_message = "Pick an unprivileged port."
  }
}

job "validated" {
  meta {
    environment = var.environment
  }

  group "g" {
    network {
      port "http" {
        static = var.port
      }
    }

    task "t" {
      driver = "raw_exec"

      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "${var.port}"]
      }
    }
  }
}

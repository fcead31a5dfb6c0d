variable "image" {
  type        = string
  description = "No default and no value given"
}

variable "replicas" {
  type    = number
  default = "many"
}

job "needs-vars" {
  group "g" {
    count = var.replicas

    task "t" {
      driver = "docker"
      config {
        image = var.image
      }
    }
  }
}

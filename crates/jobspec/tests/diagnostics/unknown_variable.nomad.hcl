variable "image" {
  default = "nginx"
}

job "typo" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image = var.imag
        tag   = local.version
      }
    }
  }
}

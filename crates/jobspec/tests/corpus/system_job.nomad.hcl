# A log shipper on every Linux client.
job "log-shipper" {
  type     = "system"
  priority = 75

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  group "ship" {
    task "vector" {
      driver = "docker"

      config {
        image        = "example/vector:0.34"
        network_mode = "host"
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}

# A cache that keeps its scratch disk across updates.
job "cache" {
  group "redis" {
    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = 2048
    }

    task "redis" {
      driver = "docker"

      config {
        image = "redis:7"
      }
    }
  }
}

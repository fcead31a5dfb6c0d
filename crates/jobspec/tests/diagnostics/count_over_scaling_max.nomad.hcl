job "web" {
  group "api" {
    count = 12

    scaling {
      min = 1
      max = 10
    }

    task "server" {
      driver = "docker"
      config {
        image = "example/web:1"
      }
    }
  }
}

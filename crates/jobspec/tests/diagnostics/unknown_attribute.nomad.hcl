job "web" {
  group "api" {
    count = 2
    task "server" {
      driver = "docker"
      memroy = 512
      resources {
        memory = 4
      }
    }
  }
}

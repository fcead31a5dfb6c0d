job "web" {
  group "api" {
    network {
      port "http" {
        static = 8080
      }
      port "alt" {
        static = 8080
      }
    }

    task "server" {
      driver = "raw_exec"
      config {
        command = "/bin/server"
      }
    }
  }
}

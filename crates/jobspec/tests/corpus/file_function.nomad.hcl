# file() reads through the caller's callback (here: tests/corpus/files/).
job "with-files" {
  group "g" {
    task "t" {
      driver = "docker"

      config {
        image = "nginx:1.25"
      }

      template {
        destination = "local/nginx.conf"
        data        = file("nginx.conf")
      }

      env {
        CERT_B64 = filebase64("tiny.txt")
        FIRST    = trimspace(split("\n", file("tiny.txt"))[0])
      }
    }
  }
}

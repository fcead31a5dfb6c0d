# Task ordering within a group: an init task, a sidecar and a cleanup.
job "app-with-helpers" {
  group "app" {
    task "wait-for-db" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      config {
        command = "/bin/sh"
        args    = ["-c", "until nc -z db.internal 5432; do sleep 1; done"]
      }
    }

    task "log-forwarder" {
      driver = "docker"

      lifecycle {
        hook    = "poststart"
        sidecar = true
      }

      config {
        image = "example/forwarder:1"
      }
    }

    task "main" {
      driver = "docker"
      leader = true

      config {
        image = "example/app:3"
      }
    }

    task "flush" {
      driver = "raw_exec"

      lifecycle {
        hook = "poststop"
      }

      config {
        command = "/usr/local/bin/flush-cache"
      }
    }
  }
}

job "dupes" {
  group "app" {
    task "web" {
      driver = "docker"
      config {
        image = "a"
      }
    }

    task "web" {
      driver = "docker"
      config {
        image = "b"
      }
    }
  }

  group "app" {
    task "other" {
      driver = "docker"
      config {
        image = "c"
      }
    }
  }
}

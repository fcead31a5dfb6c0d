# Several groups with several tasks each.
job "shop" {
  datacenters = ["dc1"]

  group "web" {
    count = 2

    task "frontend" {
      driver = "docker"

      config {
        image = "example/shop-web:4"
      }
    }

    task "cache" {
      driver = "docker"

      config {
        image = "memcached:1.6"
      }

      resources {
        memory = 64
      }
    }
  }

  group "payments" {
    count = 1

    task "processor" {
      driver = "docker"

      config {
        image = "example/shop-payments:4"
      }
    }
  }

  group "search" {
    count = 0

    task "indexer" {
      driver = "exec"

      config {
        command = "/usr/local/bin/indexer"
      }
    }
  }
}

# Host and CSI volumes mounted into tasks.
job "stateful" {
  group "db" {
    count = 2

    volume "data" {
      type            = "csi"
      source          = "pg-data"
      per_alloc       = true
      access_mode     = "single-node-writer"
      attachment_mode = "file-system"
    }

    volume "certs" {
      type      = "host"
      source    = "tls-certs"
      read_only = true
    }

    task "postgres" {
      driver = "docker"

      volume_mount {
        volume      = "data"
        destination = "/var/lib/postgresql/data"
      }

      volume_mount {
        volume           = "certs"
        destination      = "/etc/ssl/private"
        read_only        = true
        propagation_mode = "host-to-task"
      }

      config {
        image = "postgres:16"
      }
    }
  }
}

# Services at group and task level, with every check type.
job "services" {
  group "api" {
    network {
      port "http" {}
      port "grpc" {}
    }

    service {
      port         = "http"
      provider     = "nomad"
      tags         = ["api"]
      canary_tags  = ["canary"]
      address_mode = "host"

      meta {
        version = "3"
      }

      check {
        name     = "api-alive"
        type     = "tcp"
        interval = "5s"
        timeout  = "1s"
      }

      check {
        type           = "http"
        path           = "/ready"
        method         = "POST"
        protocol       = "https"
        interval       = "15s"
        timeout        = "3s"
        initial_status = "passing"
      }
    }

    service {
      name = "api-grpc"
      port = "grpc"

      check {
        type     = "grpc"
        port     = "grpc"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "server" {
      driver = "docker"

      service {
        port     = "http"
        provider = "nomad"
        task     = "server"

        check {
          type     = "script"
          command  = "/bin/healthcheck"
          args     = ["--quick"]
          interval = "30s"
          timeout  = "5s"
        }
      }

      config {
        image = "example/api:3"
        ports = ["http", "grpc"]
      }
    }
  }
}

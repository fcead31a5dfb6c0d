# Consul service mesh fields that Drover keeps without acting on them yet:
# connect sidecars, check_restart, tagged addresses and check options.
job "mesh" {
  datacenters = ["dc1"]

  group "api" {
    network {
      mode = "bridge"
      port "http" {
        to = 9090
      }
    }

    service {
      name                = "count-api"
      port                = "http"
      enable_tag_override = true
      on_update           = "require_healthy"
      tagged_addresses = {
        lan = "10.0.0.5"
      }
      canary_meta = {
        stage = "canary"
      }

      connect {
        sidecar_service {
          proxy {
            upstreams {
              destination_name = "count-db"
              local_bind_port  = 5432
            }
          }
        }
      }

      check {
        name                     = "api-health"
        type                     = "http"
        path                     = "/health"
        interval                 = "10s"
        timeout                  = "2s"
        expose                   = true
        success_before_passing   = 2
        failures_before_critical = 3
        header {
          X-Probe = ["drover"]
        }
        check_restart {
          limit = 3
          grace = "30s"
        }
      }

      check {
        name            = "api-grpc"
        type            = "grpc"
        port            = "http"
        grpc_service    = "count.v1.Health"
        grpc_use_tls    = true
        tls_skip_verify = true
        interval        = "15s"
        timeout         = "3s"
      }
    }

    task "api" {
      driver = "docker"
      config {
        image = "example/count-api:1.2"
        ports = ["http"]
      }
    }
  }
}

# Autoscaling bounds: count starts at scaling.min when it is not given.
job "autoscaled" {
  group "web" {
    scaling {
      enabled = true
      min     = 2
      max     = 20

      policy {
        cooldown            = "2m"
        evaluation_interval = "30s"

        check "avg_cpu" {
          source = "prometheus"
          query  = "avg(nomad_client_allocs_cpu_total_percent)"

          strategy "target-value" {
            target = 70
          }
        }
      }
    }

    task "app" {
      driver = "docker"

      config {
        image = "example/web:1"
      }
    }
  }
}

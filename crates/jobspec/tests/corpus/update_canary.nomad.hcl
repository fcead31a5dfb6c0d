# Canary deployments: the job-level update applies to every group, and a
# group can override parts of it.
job "checkout" {
  update {
    max_parallel      = 1
    canary            = 1
    auto_promote      = true
    health_check      = "checks"
    progress_deadline = "15m"
    stagger           = "45s"
  }

  group "web" {
    count = 4

    update {
      canary       = 2
      max_parallel = 2
      health_check = "task_states"
    }

    task "app" {
      driver = "docker"

      config {
        image = "example/checkout:5"
      }
    }
  }

  group "worker" {
    task "app" {
      driver = "docker"

      config {
        image = "example/checkout-worker:5"
      }
    }
  }
}

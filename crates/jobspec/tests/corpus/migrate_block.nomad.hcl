# Drain behaviour: move two allocations at a time, by task state.
job "search" {
  group "index" {
    count = 6

    migrate {
      max_parallel     = 2
      health_check     = "task_states"
      min_healthy_time = "30s"
      healthy_deadline = "10m"
    }

    task "opensearch" {
      driver = "docker"

      config {
        image = "opensearchproject/opensearch:2"
      }

      resources {
        memory = 4096
      }
    }
  }
}

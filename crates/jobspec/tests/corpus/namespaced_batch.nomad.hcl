# A batch job with a task restart block and group shutdown delay.
job "etl" {
  type      = "batch"
  namespace = "analytics"
  node_pool = "batch-pool"

  group "extract" {
    count = 4

    restart {
      attempts = 0
      mode     = "fail"
    }

    task "pull" {
      driver = "exec"

      config {
        command = "/opt/etl/extract"
        args    = ["--partition", "${NOMAD_ALLOC_INDEX}"]
      }

      resources {
        cpu    = 1000
        memory = 2048
      }
    }
  }
}

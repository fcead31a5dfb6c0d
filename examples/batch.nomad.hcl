# A raw_exec batch job: it runs once, prints where it ran, and completes.
#   drover job run examples/batch.nomad.hcl
job "batch" {
  datacenters = ["*"]
  type        = "batch"

  group "work" {
    task "work" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo \"job ${NOMAD_JOB_NAME} ran task ${NOMAD_TASK_NAME} in ${NOMAD_ALLOC_DIR}\""]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}

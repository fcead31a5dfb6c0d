# A task directly in the job: Nomad's HCL2 parser makes it a group of its
# own, named after the task, with one allocation.
job "solo" {
  type = "batch"

  task "once" {
    driver = "raw_exec"

    config {
      command = "/bin/true"
    }
  }
}

# Nomad's six-field cron ends with a year: run at noon on 1 June 2030 only.
job "one-off-migration" {
  type = "batch"

  periodic {
    cron    = "0 12 1 6 * 2030"
    enabled = false
  }

  group "migrate" {
    task "run" {
      driver = "raw_exec"

      config {
        command = "/opt/migrate/run.sh"
      }
    }
  }
}

# Cron shorthands, a seven-field expression and a disabled schedule.
job "hourly-sync" {
  type = "batch"

  periodic {
    cron             = "@hourly"
    prohibit_overlap = true
  }

  group "sync" {
    task "rsync" {
      driver = "raw_exec"

      config {
        command = "rsync"
        args    = ["-a", "/src/", "/dst/"]
      }
    }
  }
}

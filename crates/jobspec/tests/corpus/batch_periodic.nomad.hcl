# A nightly batch report that must never overlap with itself.
job "nightly-report" {
  type = "batch"

  periodic {
    cron             = "30 2 * * *"
    time_zone        = "Europe/Paris"
    prohibit_overlap = true
  }

  group "report" {
    task "build" {
      driver = "exec"

      config {
        command = "/usr/local/bin/report"
        args    = ["--since", "24h"]
      }
    }
  }
}

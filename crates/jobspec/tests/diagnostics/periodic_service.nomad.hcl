job "report" {
  periodic {
    cron = "0 * * * *"
  }

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/report"
      }
    }
  }
}

# Written as if the first field were seconds; Nomad's sixth field is a year,
# so this reads as minute 0, hour 30 and year "MON-FRI".
job "weekday-morning" {
  type = "batch"

  periodic {
    cron = "0 30 9 * * MON-FRI"
  }

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/tick"
      }
    }
  }
}

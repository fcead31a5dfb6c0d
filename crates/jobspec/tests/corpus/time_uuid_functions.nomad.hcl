# Time and identifier functions: the time and the randomness come from the
# caller, so the output is reproducible.
job "timed" {
  meta = {
    now       = timestamp()
    date      = formatdate("DD MMM YYYY hh:mm ZZZ", timestamp())
    weekday   = formatdate("EEEE", "2024-02-29T08:00:00Z")
    later     = timeadd(timestamp(), "36h")
    earlier   = timeadd("2024-01-01T00:00:00+02:00", "-90m")
    run_id    = uuidv4()
    stable_id = uuidv5("dns", "timed.example.com")
  }

  group "g" {
    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/true"
      }
    }
  }
}

# Several schedules for one job, via crons.
job "cache-warmer" {
  type = "batch"

  periodic {
    crons = [
      "0 6 * * MON-FRI",
      "0 10 * * SAT,SUN",
    ]
    enabled = true
    # Drover extension: at most one run at a time, later launches queue.
    max_concurrent = 1
  }

  group "warm" {
    task "curl" {
      driver = "raw_exec"

      config {
        command = "curl"
        args    = ["-fsS", "http://cache.internal/warm"]
      }
    }
  }
}

# Custom restart and reschedule behaviour, partly specified: Nomad fills
# the rest from the job type's defaults.
job "worker" {
  type = "batch"

  reschedule {
    attempts = 5
    interval = "6h"
  }

  group "queue" {
    restart {
      attempts = 6
      delay    = "20s"
      mode     = "delay"
      interval = "10m"
    }

    reschedule {
      delay          = "30s"
      delay_function = "fibonacci"
      max_delay      = "10m"
    }

    task "consume" {
      driver = "exec"

      restart {
        attempts = 1
      }

      config {
        command = "/usr/local/bin/consumer"
      }
    }
  }

  group "janitor" {
    task "sweep" {
      driver = "exec"

      config {
        command = "/usr/local/bin/sweep"
      }
    }
  }
}

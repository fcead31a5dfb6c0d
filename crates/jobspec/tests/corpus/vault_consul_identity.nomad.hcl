# Integrations Drover keeps as written until it acts on them.
job "secrets-user" {
  group "app" {
    consul {
      namespace = "payments"
    }

    task "api" {
      driver = "docker"

      vault {
        role        = "payments-api"
        change_mode = "signal"
        change_signal = "SIGUSR1"
      }

      identity {
        env  = true
        file = true
      }

      identity "aws" {
        audience = ["sts.amazonaws.com"]
        ttl      = "1h"
      }

      config {
        image = "example/payments-api:7"
      }
    }
  }
}

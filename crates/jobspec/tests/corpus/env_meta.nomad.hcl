# Environment and metadata, as blocks and as maps.
job "env-demo" {
  meta {
    team  = "platform"
    owner = "ops"
  }

  group "g" {
    meta = {
      "release.channel" = "stable"
      build             = 1042
    }

    task "t" {
      driver = "raw_exec"

      env {
        LOG_LEVEL = "debug"
        WORKERS   = 8
        DEBUG     = false
        DATA_DIR  = "${NOMAD_ALLOC_DIR}/data"
      }

      meta = {
        "com.example/tier" = "gold"
      }

      config {
        command = "/usr/bin/env"
      }
    }
  }
}

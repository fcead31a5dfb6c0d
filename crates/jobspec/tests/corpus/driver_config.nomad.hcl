# A driver config with nested blocks and maps: kept as a value tree for the
# driver to decode.
job "docker-config" {
  group "g" {
    task "t" {
      driver = "docker"

      config {
        image      = "example/app:1"
        command    = "/app/run"
        args       = ["--port", "8080"]
        privileged = false
        cpu_hard_limit = true
        labels = {
          team = "core"
        }

        mount {
          type   = "bind"
          source = "local/config"
          target = "/etc/app"
        }

        mount {
          type     = "tmpfs"
          target   = "/scratch"
          readonly = false

          tmpfs_options {
            size = 100000
          }
        }
      }
    }
  }
}

# Log rotation and shutdown behaviour.
job "graceful" {
  group "app" {
    shutdown_delay = "5s"

    task "server" {
      driver         = "exec"
      user           = "nobody"
      kill_timeout   = "45s"
      kill_signal    = "SIGTERM"
      shutdown_delay = "2s"

      logs {
        max_files     = 3
        max_file_size = 25
      }

      config {
        command = "/usr/local/bin/server"
      }
    }

    task "noisy" {
      driver = "exec"

      logs {
        disabled = true
      }

      config {
        command = "/usr/local/bin/noisy"
      }
    }
  }
}

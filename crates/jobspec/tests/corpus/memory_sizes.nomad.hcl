# Sizes written with units.
job "sizes" {
  group "g" {
    ephemeral_disk {
      size = "2GiB"
    }

    task "t" {
      driver = "exec"

      logs {
        max_files     = 2
        max_file_size = "50MB"
      }

      resources {
        cpu        = 500
        memory     = "1GB"
        memory_max = "1.5GiB"
      }

      config {
        command = "/bin/app"
      }
    }
  }
}

job "drivers" {
  group "g" {
    task "cache" {
      driver = "docker"
      config {
        imgae = "redis:7"
        ports = ["db"]
        mount {
          type   = "bind"
          target = "/data"
        }
        mount {
          tpye   = "tmpfs"
          target = "/scratch"
          tmpfs_options {
            size  = 1000000
            modes = 1777
          }
        }
        logging {
          type = "json-file"
          config {
            max-file = "3"
          }
        }
      }
    }
    task "script" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        argz    = ["-c", "date"]
      }
    }
    task "vm" {
      driver = "qemu"
      config {
        image_path  = "local/vm.img"
        accelerator = "kvm"
        memory      = 2048
      }
    }
    task "plugin" {
      driver = "podman"
      config {
        anything_goes = true
      }
    }
  }
}

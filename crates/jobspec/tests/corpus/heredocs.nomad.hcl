# Heredoc forms: plain and indented, with an interpolation.
variable "greeting" {
  default = "hello"
}

job "heredocs" {
  group "g" {
    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args = ["-c", <<EOT
echo ${var.greeting}
echo done
EOT
        ]
      }

      template {
        destination = "local/run.sh"
        perms       = "0755"
        data        = <<-SCRIPT
          #!/bin/sh
            echo "${var.greeting} from $NOMAD_TASK_NAME"
          exec sleep infinity
        SCRIPT
      }
    }
  }
}

# The smallest useful job: one group, one task, everything else defaulted.
job "hello" {
  group "app" {
    task "sleep" {
      driver = "raw_exec"

      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
    }
  }
}

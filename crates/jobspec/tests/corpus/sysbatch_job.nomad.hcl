# Run a cleanup once on every node, in parallel.
job "tmp-cleanup" {
  type = "sysbatch"

  group "clean" {
    task "find" {
      driver = "raw_exec"

      config {
        command = "find"
        args    = ["/tmp", "-mtime", "+7", "-delete"]
      }
    }
  }
}

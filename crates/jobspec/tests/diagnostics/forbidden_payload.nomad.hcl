job "dispatcher" {
  type = "batch"

  parameterized {
    payload = "forbidden"
  }

  group "g" {
    task "t" {
      driver = "raw_exec"

      dispatch_payload {
        file = "input.json"
      }

      config {
        command = "/bin/work"
      }
    }
  }
}

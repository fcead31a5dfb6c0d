job "picky" {
  constraint {
    attribute = "${attr.kernel.name}"
    operator  = "regexp"
  }

  constraint {
    operator = "bogus"
    value    = "x"
  }

  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = "/bin/true"
      }
    }
  }
}

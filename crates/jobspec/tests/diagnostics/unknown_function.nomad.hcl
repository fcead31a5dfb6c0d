job "fn" {
  meta = {
    a = frobnicate("x")
    b = upper(1, 2)
    c = file("secret.txt")
    d = 1 / 0
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

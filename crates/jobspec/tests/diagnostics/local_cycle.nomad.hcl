locals {
  a = local.b
  b = local.a
  c = local.c_missing
}

job "cycle" {
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = local.a
      }
    }
  }
}

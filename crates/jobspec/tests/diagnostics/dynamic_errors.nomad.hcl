job "dyn" {
  group "g" {
    network {
      dynamic "port" {
        for_each = "not-a-collection"
        content {}
      }

      dynamic "port" {
        labels = ["x"]
      }
    }

    task "t" {
      driver = "exec"
      config {
        command = "/bin/true"
      }
    }
  }
}

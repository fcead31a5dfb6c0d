# Splat operators and index access on nested values.
locals {
  nodes = [
    { name = "n1", ips = ["10.0.0.1", "10.1.0.1"] },
    { name = "n2", ips = ["10.0.0.2", "10.1.0.2"] },
  ]
  single = { name = "solo" }
}

job "splats" {
  meta = {
    names      = join(",", local.nodes[*].name)
    attr_splat = join(",", local.nodes.*.name)
    first_ips  = join(",", [for n in local.nodes : n.ips[0]])
    legacy     = local.nodes.1.name
    single     = join(",", local.single[*].name)
  }

  group "g" {
    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/true"
      }
    }
  }
}

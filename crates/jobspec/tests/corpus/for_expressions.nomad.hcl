# for expressions over lists and maps, with filters, grouping and splats.
locals {
  backends = [
    { name = "a", port = 8001, enabled = true, zone = "x" },
    { name = "b", port = 8002, enabled = false, zone = "y" },
    { name = "c", port = 8003, enabled = true, zone = "x" },
  ]
  enabled   = [for b in local.backends : b.name if b.enabled]
  by_name   = { for b in local.backends : b.name => b.port }
  by_zone   = { for b in local.backends : b.zone => b.name... }
  all_ports = local.backends[*].port
  indexed   = [for i, b in local.backends : "${i}:${b.name}"]
}

job "for-demo" {
  meta = {
    enabled   = join(",", local.enabled)
    ports     = join(",", local.all_ports)
    zone_x    = join(",", local.by_zone["x"])
    b_port    = local.by_name.b
    indexed   = join(" ", local.indexed)
    uppercase = join(",", [for k, v in local.by_name : upper(k) if v > 8001])
  }

  group "g" {
    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/true"
        args    = [for b in local.backends : "--backend=${b.name}:${b.port}"]
      }
    }
  }
}

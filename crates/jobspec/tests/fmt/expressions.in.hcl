locals {
  tags = {
  team = "web"
      "cost-center" = "42"
  }
  ports = [for p in [80, 443] : {
  port = p
  name = "port-${p}"
  }]
  merged = merge(local.tags, {
      extra = true
  })
  enabled = var.count == 0 ? false : true
  quoted = "a = b"
}

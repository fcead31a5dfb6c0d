# Network address functions.
locals {
  vpc = "10.20.0.0/16"
}

job "netcalc" {
  meta = {
    gateway  = cidrhost(local.vpc, 1)
    last     = cidrhost(local.vpc, -2)
    netmask  = cidrnetmask("172.16.0.0/12")
    subnet   = cidrsubnet(local.vpc, 8, 3)
    subnets  = join(" ", cidrsubnets(local.vpc, 4, 4, 8))
    v6       = cidrsubnet("fd00:1::/48", 16, 5)
  }

  group "g" {
    network {
      dns {
        servers = [cidrhost(local.vpc, 2)]
      }
    }

    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/true"
      }
    }
  }
}

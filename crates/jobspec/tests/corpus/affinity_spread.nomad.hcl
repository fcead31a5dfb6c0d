# Soft preferences and spreading across zones.
job "api" {
  affinity {
    attribute = "${node.datacenter}"
    value     = "eu-west-1"
    weight    = 80
  }

  spread {
    attribute = "${meta.zone}"
    weight    = 100

    target "a" {
      percent = 50
    }

    target "b" {
      percent = 30
    }

    target "zone-c" {
      value   = "c"
      percent = 20
    }
  }

  group "api" {
    count = 10

    affinity {
      attribute = "${meta.instance_type}"
      operator  = "set_contains_any"
      value     = "m5.large,m6i.large"
      weight    = -30
    }

    spread {
      attribute = "${node.unique.id}"
    }

    task "app" {
      driver = "docker"

      affinity {
        attribute = "${attr.cpu.arch}"
        value     = "arm64"
        weight    = 10
      }

      config {
        image = "example/api:1.0"
      }
    }
  }
}

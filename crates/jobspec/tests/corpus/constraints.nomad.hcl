# Every constraint form: plain, the operator shorthands, and the
# distinct_hosts / distinct_property shorthands.
job "placement-rules" {
  constraint {
    attribute = "${attr.os.name}"
    operator  = "="
    value     = "ubuntu"
  }

  constraint {
    attribute = "${attr.kernel.version}"
    version   = ">= 5.10"
  }

  group "db" {
    count = 3

    constraint {
      distinct_hosts = true
    }

    constraint {
      distinct_property = "${meta.rack}"
      value             = "2"
    }

    constraint {
      attribute = "${node.class}"
      regexp    = "^storage-"
    }

    constraint {
      attribute    = "${meta.features}"
      set_contains = "ssd,nvme"
    }

    constraint {
      attribute = "${meta.maintenance}"
      operator  = "is_not_set"
    }

    task "postgres" {
      driver = "docker"

      constraint {
        attribute = "${driver.docker.version}"
        operator  = "semver"
        value     = ">= 20.10.0"
      }

      config {
        image = "postgres:16"
      }
    }
  }
}

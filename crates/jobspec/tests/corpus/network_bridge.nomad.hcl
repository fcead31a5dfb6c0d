# Bridge networking with static and mapped ports, DNS and a hostname.
job "gateway" {
  group "edge" {
    network {
      mode     = "bridge"
      hostname = "edge-${NOMAD_ALLOC_INDEX}"

      port "https" {
        static = 443
        to     = 8443
      }

      port "admin" {
        to           = 9000
        host_network = "internal"
      }

      port "metrics" {}

      dns {
        servers  = ["10.0.0.2", "10.0.0.3"]
        searches = ["svc.internal"]
        options  = ["ndots:2"]
      }
    }

    task "envoy" {
      driver = "docker"

      config {
        image = "envoyproxy/envoy:v1.29"
        ports = ["https", "admin", "metrics"]
      }
    }
  }
}

# What happens to allocations when their client loses the servers.
job "edge-agent" {
  group "agent" {
    disconnect {
      lost_after           = "1h"
      stop_on_client_after = "30m"
      replace              = false
      reconcile            = "keep_original"
    }

    task "agent" {
      driver = "exec"

      config {
        command = "/opt/agent/bin/agent"
      }
    }
  }

  group "legacy" {
    max_client_disconnect = "2h"

    task "agent" {
      driver = "exec"

      config {
        command = "/opt/agent/bin/agent"
      }
    }
  }
}

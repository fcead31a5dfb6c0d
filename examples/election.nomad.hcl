# Three replicas elect a leader with drover-sdk's Election (the
# drover-election-example binary: `cargo build -p drover-sdk --bins`).
# The leader logs "elected leader <alloc> with fencing token N" and makes
# fenced writes to the variable election/ledger; the others log who leads.
# Kill the leader's process and another replica takes over within the
# lock's TTL plus its lock-delay.
#   drover job run examples/election.nomad.hcl
#   drover var get election/ledger
job "election" {
  datacenters = ["*"]
  type        = "service"

  group "replicas" {
    count = 3

    restart {
      attempts = 3
      delay    = "5s"
      interval = "1m"
      mode     = "delay"
    }

    task "replica" {
      driver = "raw_exec"

      config {
        command = "drover-election-example"
      }

      env {
        DROVER_ADDR       = "http://127.0.0.1:4646"
        ELECTION_TTL_MS   = "1000"
        ELECTION_DELAY_MS = "500"
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}

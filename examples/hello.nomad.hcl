# A raw_exec service that prints a line every second.
#   drover job run examples/hello.nomad.hcl
#   drover alloc logs -f <alloc-id>
job "hello" {
  datacenters = ["*"]
  type        = "service"

  group "hello" {
    count = 1

    task "hello" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "i=0; while true; do i=$((i+1)); echo \"hello from ${NOMAD_ALLOC_ID} line $i\"; sleep 1; done"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}

# Reserved cores, oversubscribed memory and a GPU with its own rules.
job "trainer" {
  type = "batch"

  group "train" {
    task "torch" {
      driver = "docker"

      config {
        image = "example/trainer:cuda12"
      }

      resources {
        cores      = 4
        memory     = 8192
        memory_max = 16384

        device "nvidia/gpu" {
          count = 2

          constraint {
            attribute = "${device.attr.memory}"
            operator  = ">="
            value     = "16 GiB"
          }

          affinity {
            attribute = "${device.model}"
            value     = "A100"
            weight    = 50
          }
        }
      }
    }
  }
}

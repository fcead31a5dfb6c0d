# Dynamic groups and tasks, with a custom iterator and a nested dynamic block.
variable "shards" {
  default = {
    alpha = { size = 2, tasks = ["ingest", "compact"] }
    beta  = { size = 1, tasks = ["ingest"] }
  }
}

job "sharded" {
  dynamic "group" {
    for_each = var.shards
    iterator = shard
    labels   = ["shard-${shard.key}"]

    content {
      count = shard.value.size

      dynamic "task" {
        for_each = shard.value.tasks
        labels   = [task.value]

        content {
          driver = "exec"

          config {
            command = "/opt/shard/bin/${task.value}"
            args    = ["--shard", shard.key, "--slot", "${task.key}"]
          }
        }
      }
    }
  }
}

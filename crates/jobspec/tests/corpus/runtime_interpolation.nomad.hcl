# Runtime interpolations stay as written for the client, next to values
# that are known now.
variable "app" {
  default = "tracker"
}

job "runtime" {
  constraint {
    attribute = "${attr.unique.hostname}"
    operator  = "!="
    value     = "${meta.excluded_host}"
  }

  group "g" {
    task "t" {
      driver = "exec"

      config {
        command = "/opt/${var.app}/bin/${var.app}"
        args = [
          "--node=${node.unique.name}",
          "--dc=${node.datacenter}",
          "--alloc=${NOMAD_ALLOC_ID}",
          "--addr=${NOMAD_ADDR_http}",
          "--home=${env["HOME"]}",
          "--mixed=${var.app}-${NOMAD_ALLOC_INDEX}",
          "--escaped=$${NOT_INTERPOLATED}",
          "--upper=${upper(var.app)}/${attr.cpu.arch}",
        ]
      }

      env {
        DC       = "${node.datacenter}"
        RACK     = "rack-${meta.rack}"
        TASK_DIR = "${NOMAD_TASK_DIR}"
        WHOLE    = "${NOMAD_META_owner}"
      }
    }
  }
}

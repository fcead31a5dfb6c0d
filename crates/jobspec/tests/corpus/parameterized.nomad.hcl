# A dispatchable transcoder: callers must send a payload and an input name.
job "transcode" {
  type = "batch"

  parameterized {
    payload       = "required"
    meta_required = ["input"]
    meta_optional = ["preset"]
    # Drover extension: at most 4 transcodes run at once; the rest queue.
    max_concurrent = 4
  }

  group "work" {
    task "ffmpeg" {
      driver = "exec"

      dispatch_payload {
        file = "job.json"
      }

      config {
        command = "/usr/bin/ffmpeg-wrapper"
        args    = ["--spec", "local/job.json", "--input", "${NOMAD_META_input}"]
      }

      resources {
        cpu    = 2000
        memory = 1024
      }
    }
  }
}

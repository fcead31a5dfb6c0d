# Downloads before start: an archive with a checksum, a single file with
# headers, and a git repository.
job "fetcher" {
  type = "batch"

  group "run" {
    task "tool" {
      driver = "exec"

      artifact {
        source      = "https://releases.example.com/tool/1.2.0/tool_linux_amd64.tar.gz"
        destination = "local/bin"

        options {
          checksum = "sha256:0c3d6c7e1d5a0f6e2b1f84a53f4e8d4f0b3d3a47b81b0e6f8c7e2a1d9c8b7a6f"
        }
      }

      artifact {
        source      = "https://config.example.com/tool.yaml"
        destination = "local/tool.yaml"
        mode        = "file"

        headers {
          Authorization = "Bearer placeholder"
          Accept        = "text/yaml"
        }
      }

      artifact {
        source = "git::https://git.example.com/team/scripts.git"
        mode   = "dir"
        options = {
          ref   = "v3"
          depth = 1
        }
      }

      config {
        command = "local/bin/tool"
      }
    }
  }
}

# Rendered configuration: an inline template with a heredoc, an env file,
# a template from a file with custom delimiters and signal on change.
job "templated" {
  group "app" {
    task "server" {
      driver = "docker"

      config {
        image = "example/server:1"
      }

      template {
        destination = "local/server.toml"
        change_mode = "signal"
        change_signal = "SIGHUP"
        splay       = "10s"
        perms       = "0600"
        data        = <<-EOT
          [server]
          listen = "0.0.0.0:{{ env "NOMAD_PORT_http" }}"
          {{ range service "database" }}
          db = "{{ .Address }}:{{ .Port }}"
          {{ end }}
        EOT
      }

      template {
        destination = "secrets/app.env"
        env         = true
        change_mode = "restart"
        data        = "API_URL=https://api.internal\nREGION=${node.region}\n"
      }

      template {
        source          = "local/nginx.conf.tpl"
        destination     = "local/nginx.conf"
        left_delimiter  = "[["
        right_delimiter = "]]"
        change_mode     = "noop"
      }
    }
  }
}

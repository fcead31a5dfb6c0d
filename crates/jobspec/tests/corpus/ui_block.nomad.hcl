# Text and links for the web UI.
job "docs-site" {
  ui {
    description = "The public **documentation** site"

    link {
      label = "Runbook"
      url   = "https://wiki.example.com/runbooks/docs-site"
    }

    link {
      label = "Dashboards"
      url   = "https://grafana.example.com/d/docs"
    }
  }

  group "web" {
    task "nginx" {
      driver = "docker"

      config {
        image = "nginx:1.25"
      }
    }
  }
}

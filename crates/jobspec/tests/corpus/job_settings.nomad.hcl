# Job-wide placement and identity settings.
job "billing" {
  name        = "billing-service"
  region      = "europe"
  namespace   = "finance"
  node_pool   = "high-memory"
  datacenters = ["eu-*", "backup-dc"]
  priority    = 90
  all_at_once = true

  group "api" {
    task "app" {
      driver = "java"

      config {
        jar_path    = "local/billing.jar"
        jvm_options = ["-Xmx2g", "-Xms512m"]
      }
    }
  }
}

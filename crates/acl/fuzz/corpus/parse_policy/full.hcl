namespace "default" {
  policy       = "read"
  capabilities = ["submit-job", "read-logs"]
  variables {
    path "app/*" { capabilities = ["read", "list"] }
    path "app/secret" { capabilities = ["deny"] }
  }
}
namespace "prod-*" { policy = "deny" }
namespace "*" { policy = "scale" }
node { policy = "read" }
agent { policy = "write" }
operator { policy = "read" }
quota { policy = "read" }
plugin { policy = "list" }
host_volume "data-*" {
  policy       = "read"
  capabilities = ["mount-readwrite"]
}

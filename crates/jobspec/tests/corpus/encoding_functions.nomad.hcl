# Encoding and hashing functions.
locals {
  settings = {
    name    = "api"
    ports   = [80, 443]
    enabled = true
    nested  = { level = "info" }
  }
}

job "encodings" {
  group "g" {
    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/true"
      }

      template {
        destination = "local/settings.yaml"
        data        = yamlencode(local.settings)
      }

      template {
        destination = "local/settings.json"
        data        = jsonencode(local.settings)
      }

      env {
        B64       = base64encode("user:pass")
        PLAIN     = base64decode("aGVsbG8gd29ybGQ=")
        DECODED   = jsondecode("{\"a\": [1, 2]}").a[1]
        CSV_FIRST = csvdecode("name,size\nsmall,1\nlarge,9\n")[1].name
        MD5       = md5("drover")
        SHA1      = sha1("drover")
        SHA256    = sha256("drover")
        SHA512    = substr(sha512("drover"), 0, 16)
      }
    }
  }
}

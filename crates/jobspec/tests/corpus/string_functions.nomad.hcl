# The string functions.
locals {
  name = "  Order-Service  "
}

job "strings" {
  meta = {
    format     = format("%s-%03d-%.1f-%v-%q", "web", 7, 2.25, true, "x")
    join       = join("/", ["a", "b"], ["c"])
    split      = jsonencode(split(",", "a,b,,c"))
    upper      = upper("abc")
    lower      = lower("ÀBC")
    title      = title("hello nomad world")
    trimspace  = trimspace(local.name)
    trim       = trim("--x--", "-")
    trimprefix = trimprefix("prefix-value", "prefix-")
    trimsuffix = trimsuffix("value.tar.gz", ".gz")
    replace    = replace("a.b.c", ".", "/")
    replace_re = replace("v1.2.3", "/[0-9]+/", "N")
    regex      = regex("v(\\d+)\\.(\\d+)", "release v12.4")[1]
    regex_all  = jsonencode(regexall("[a-z]+", "ab 12 cd"))
    named      = regex("(?P<major>\\d+)\\.(?P<minor>\\d+)", "3.9").minor
    substr     = substr("kubernetes", 0, 4)
    strrev     = strrev("stressed")
    strlen     = strlen("héllo")
    length     = length("four")
    indent     = indent(2, "a\nb")
    chomp      = chomp("line\n\n")
    startswith = startswith("nomad", "no")
    endswith   = endswith("nomad", "ad")
    formatlist = join(";", formatlist("%s=%d", ["a", "b"], [1, 2]))
    urlencode  = urlencode("a b&c")
    tostring   = tostring(42)
    regex_repl = regex_replace("2024-03-01", "(\\d+)-(\\d+)-(\\d+)", "$3/$2/$1")
  }

  group "g" {
    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/true"
      }
    }
  }
}

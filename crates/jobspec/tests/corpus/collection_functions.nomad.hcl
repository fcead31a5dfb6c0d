# The collection functions.
locals {
  a = { x = "1", y = "2" }
  b = { y = "20", z = "30" }
}

job "collections" {
  meta = {
    merge       = jsonencode(merge(local.a, local.b))
    concat      = jsonencode(concat(["a"], ["b", "c"]))
    keys        = jsonencode(keys(local.b))
    values      = jsonencode(values(local.a))
    lookup      = lookup(local.a, "x", "none")
    lookup_def  = lookup(local.a, "q", "none")
    flatten     = jsonencode(flatten([["a", ["b"]], "c"]))
    distinct    = jsonencode(distinct(["a", "b", "a"]))
    sort        = jsonencode(sort(["pear", "apple", "fig"]))
    range       = jsonencode(range(0, 10, 3))
    element     = element(["a", "b", "c"], 4)
    contains    = contains(["x", "y"], "y")
    coalesce    = coalesce("", "fallback")
    coalesced   = jsonencode(coalescelist([], ["z"]))
    compact     = jsonencode(compact(["a", "", "b"]))
    length      = length(local.a)
    index       = index(["a", "b"], "b")
    reverse     = jsonencode(reverse([1, 2, 3]))
    slice       = jsonencode(slice(["a", "b", "c", "d"], 1, 3))
    zipmap      = jsonencode(zipmap(["k1", "k2"], [1, 2]))
    chunklist   = jsonencode(chunklist([1, 2, 3, 4, 5], 2))
    setunion    = jsonencode(setunion(["a"], ["b", "a"]))
    setsubtract = jsonencode(setsubtract(["a", "b", "c"], ["b"]))
    setinter    = jsonencode(setintersection(["a", "b"], ["b", "c"]))
    setproduct  = jsonencode(setproduct(["a"], [1, 2]))
    tolist      = jsonencode(tolist(toset(["b", "a", "b"])))
    tomap       = jsonencode(tomap({ k = "v" }))
    transpose   = jsonencode(transpose({ a = ["1", "2"], b = ["2"] }))
    numbers     = "${min(3, 1, 2)} ${max(3, 1, 2)} ${abs(-4)} ${ceil(1.2)} ${floor(1.8)} ${pow(2, 10)} ${signum(-9)} ${sum([1, 2, 3])} ${parseint("ff", 16)} ${log(8, 2)}"
    tonumber    = tonumber("12") + 1
    expand      = max([5, 9, 2]...)
    try         = try(local.a.missing, "default")
    can         = can(local.a.missing)
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

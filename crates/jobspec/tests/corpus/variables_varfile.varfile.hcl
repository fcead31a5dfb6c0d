image   = "example/from-file:2"
memory  = 512
regions = ["emea", "apac"]

namespace "x" {
  policy = "admin"
}

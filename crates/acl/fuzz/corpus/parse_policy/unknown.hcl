node {
  policy = "read"
  extra = 1
}
bogus {}

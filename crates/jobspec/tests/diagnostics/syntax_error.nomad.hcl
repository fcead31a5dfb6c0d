job "broken" {
  group "g" {
    count = = 2
  }
}

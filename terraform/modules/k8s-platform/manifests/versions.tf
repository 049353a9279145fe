terraform {
  required_version = ">= 1.5.0"
  # No providers: this module only renders the platform's Kubernetes objects, so it can be
  # planned, applied and checked anywhere, with or without a cluster.
}

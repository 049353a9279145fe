terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.25, < 3.0"
    }
  }

  # Keep state remote and locked for a shared environment, e.g.:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "oppen/dev.tfstate"
  #   region       = "eu-west-1"
  #   use_lockfile = true
  # }
}

# Example values for the dev environment; edit them. The database password goes in TF_VAR_db_password.
region             = "eu-west-1"
name               = "oppen-dev"
availability_zones = ["eu-west-1a", "eu-west-1b"]
image_tag          = "0.1.0"
gpu_capacity_type  = "SPOT"
gpu_max_nodes      = 2
tags = {
  team = "ml-platform"
}

# A development environment: the AWS cluster and the Oppen platform on it.
# Apply in two steps, because kubernetes_manifest needs a live API server to plan:
#   terraform apply -target=module.cluster
#   terraform apply

provider "aws" {
  region = var.region
  default_tags {
    tags = merge(var.tags, { environment = "dev" })
  }
}

module "cluster" {
  source = "../../modules/aws-cluster"

  name               = var.name
  availability_zones = var.availability_zones
  db_password        = var.db_password

  gpu_node_group = {
    instance_types = ["g5.xlarge", "g5.2xlarge"]
    min_size       = 0
    max_size       = var.gpu_max_nodes
    desired_size   = 0
    capacity_type  = var.gpu_capacity_type
  }

  # A dev environment is torn down often; production keeps the defaults (protected).
  db_deletion_protection        = false
  db_skip_final_snapshot        = true
  artifact_bucket_force_destroy = true
}

provider "kubernetes" {
  host                   = module.cluster.cluster_endpoint
  cluster_ca_certificate = base64decode(module.cluster.cluster_certificate_authority_data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.cluster.cluster_name, "--region", var.region]
  }
}

locals {
  db_host_port = module.cluster.db_endpoint
}

module "platform" {
  source = "../../modules/k8s-platform"

  image                    = "${module.cluster.ecr_repository_url}:${var.image_tag}"
  dispatcher_role_arn      = module.cluster.dispatcher_role_arn
  database_url             = "postgresql+psycopg://${module.cluster.db_username}:${var.db_password}@${local.db_host_port}/${module.cluster.db_name}"
  mlflow_backend_store_uri = "postgresql://${module.cluster.db_username}:${var.db_password}@${local.db_host_port}/mlflow"
  mlflow_artifact_root     = module.cluster.artifact_root_uri
  aws_region               = var.region
  pricing_toml             = file("${path.module}/../../../app/costs/default_pricing.toml")
}

# A development environment: the network, the AWS cluster on it, and the Oppen platform.
# Apply in two steps, because kubernetes_manifest needs a live API server to plan:
#   terraform apply -target=module.cluster
#   terraform apply

provider "aws" {
  region = var.region
  default_tags {
    tags = merge(var.tags, { environment = "dev" })
  }
}

module "network" {
  source = "../../modules/network"

  name               = var.name
  cluster_name       = var.name
  availability_zones = var.availability_zones
}

module "cluster" {
  source = "../../modules/aws-cluster"

  name                 = var.name
  vpc_id               = module.network.vpc_id
  public_subnet_ids    = module.network.public_subnet_ids
  private_subnet_ids   = module.network.private_subnet_ids
  private_subnet_cidrs = module.network.private_subnet_cidrs
  db_password          = var.db_password

  # The GPU pool sized and priced per environment; system and cpu keep the module's defaults.
  node_groups = {
    gpu = {
      pool           = "gpu-training"
      gpu            = true
      instance_types = ["g5.xlarge", "g5.2xlarge"]
      min_size       = 0
      max_size       = var.gpu_max_nodes
      desired_size   = 0
      capacity_type  = var.gpu_capacity_type
    }
  }

  # A dev environment is torn down often; production keeps the defaults (protected).
  db_deletion_protection        = false
  db_skip_final_snapshot        = true
  artifact_bucket_force_destroy = true
}

# The network used to be built inside the cluster module: state from before moves, not rebuilds.
moved {
  from = module.cluster.aws_vpc.this
  to   = module.network.aws_vpc.this
}

moved {
  from = module.cluster.aws_internet_gateway.this
  to   = module.network.aws_internet_gateway.this
}

moved {
  from = module.cluster.aws_subnet.public
  to   = module.network.aws_subnet.public
}

moved {
  from = module.cluster.aws_subnet.private
  to   = module.network.aws_subnet.private
}

moved {
  from = module.cluster.aws_eip.nat
  to   = module.network.aws_eip.nat
}

moved {
  from = module.cluster.aws_nat_gateway.this
  to   = module.network.aws_nat_gateway.this
}

moved {
  from = module.cluster.aws_route_table.public
  to   = module.network.aws_route_table.public
}

moved {
  from = module.cluster.aws_route.public_internet
  to   = module.network.aws_route.public_internet
}

moved {
  from = module.cluster.aws_route_table_association.public
  to   = module.network.aws_route_table_association.public
}

moved {
  from = module.cluster.aws_route_table.private
  to   = module.network.aws_route_table.private
}

moved {
  from = module.cluster.aws_route.private_nat
  to   = module.network.aws_route.private_nat
}

moved {
  from = module.cluster.aws_route_table_association.private
  to   = module.network.aws_route_table_association.private
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

  platform = {
    image                    = "${module.cluster.ecr_repository_url}:${var.image_tag}"
    dispatcher_role_arn      = module.cluster.dispatcher_role_arn
    training_image           = "${module.cluster.ecr_repository_url}:${var.image_tag}-train"
    training_role_arn        = module.cluster.training_role_arn
    checkpoint_uri           = module.cluster.checkpoint_uri
    database_url             = "postgresql+psycopg://${module.cluster.db_username}:${var.db_password}@${local.db_host_port}/${module.cluster.db_name}"
    mlflow_backend_store_uri = "postgresql://${module.cluster.db_username}:${var.db_password}@${local.db_host_port}/mlflow"
    mlflow_artifact_root     = module.cluster.artifact_root_uri
    aws_region               = var.region
    pricing_toml             = file("${path.module}/../../../app/costs/default_pricing.toml")
  }
}

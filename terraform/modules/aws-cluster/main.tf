data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  tags = merge(var.tags, {
    "app.kubernetes.io/part-of" = "oppen"
    "terraform-module"          = "oppen/aws-cluster"
  })

  partition = data.aws_partition.current.partition
}

# --- EKS control plane ----------------------------------------------------------------------

resource "aws_eks_cluster" "this" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  vpc_config {
    subnet_ids              = concat(var.private_subnet_ids, var.public_subnet_ids)
    endpoint_private_access = true
    endpoint_public_access  = true
    public_access_cidrs     = var.cluster_endpoint_public_access_cidrs
  }

  enabled_cluster_log_types = ["api", "audit", "authenticator"]
  tags                      = local.tags

  # The role's policies must exist before the control plane uses the role, and outlive it on destroy.
  depends_on = [aws_iam_role_policy_attachment.cluster]
}

# --- Managed node groups: the defaults below, with var.node_groups merged over them ----------

locals {
  # Every attribute spelled out: merged with var.node_groups, both must have one shape.
  default_node_groups = {
    system = {
      pool           = "system"
      instance_types = ["m6i.large"]
      min_size       = 1
      max_size       = 3
      desired_size   = 2
      gpu            = false
      capacity_type  = "ON_DEMAND"
      ami_type       = null
      disk_size_gb   = 50
      labels         = {}
    }
    cpu = {
      pool           = "cpu-training"
      instance_types = ["c6i.4xlarge", "c6a.4xlarge"]
      min_size       = 0
      max_size       = 10
      desired_size   = 1
      gpu            = false
      capacity_type  = "ON_DEMAND"
      ami_type       = null
      disk_size_gb   = null
      labels         = {}
    }
    # Spot capacity for jobs submitted with --spot: tainted, so only they land here, and
    # resumed from their checkpoints when a node is reclaimed.
    cpu-spot = {
      pool           = "cpu-training"
      instance_types = ["c6i.4xlarge", "c6a.4xlarge", "c5.4xlarge"]
      min_size       = 0
      max_size       = 10
      desired_size   = 0
      gpu            = false
      capacity_type  = "SPOT"
      ami_type       = null
      disk_size_gb   = null
      labels         = {}
    }
    gpu = {
      pool           = "gpu-training"
      instance_types = ["g5.xlarge", "g5.2xlarge"]
      min_size       = 0
      max_size       = 4
      desired_size   = 0
      gpu            = true
      capacity_type  = "ON_DEMAND"
      ami_type       = null
      disk_size_gb   = null
      labels         = {}
    }
  }
  node_groups = merge(local.default_node_groups, var.node_groups)
  gpu_taint   = { key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" }
  # Oppen's spot jobs tolerate this taint (and select oppen.dev/capacity-type=spot).
  spot_taint = { key = "oppen.dev/spot", value = "true", effect = "NO_SCHEDULE" }
}

resource "aws_eks_node_group" "this" {
  for_each = local.node_groups

  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-${each.key}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.private_subnet_ids

  instance_types = each.value.instance_types
  capacity_type  = each.value.capacity_type
  ami_type       = coalesce(each.value.ami_type, each.value.gpu ? "AL2023_x86_64_NVIDIA" : "AL2023_x86_64_STANDARD")
  disk_size      = coalesce(each.value.disk_size_gb, each.value.gpu ? 200 : 100)

  scaling_config {
    min_size     = each.value.min_size
    max_size     = each.value.max_size
    desired_size = each.value.desired_size
  }

  update_config {
    max_unavailable = 1
  }

  labels = merge(each.value.labels, each.value.gpu ? { "nvidia.com/gpu.present" = "true" } : {}, {
    "oppen.dev/pool"          = each.value.pool
    "oppen.dev/capacity-type" = lower(each.value.capacity_type)
  })

  dynamic "taint" {
    for_each = concat(each.value.gpu ? [local.gpu_taint] : [],
    each.value.capacity_type == "SPOT" ? [local.spot_taint] : [])
    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }

  tags = merge(local.tags, { Name = "${var.name}-${each.key}" })

  # Scaling is left to the cluster autoscaler once the group exists.
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# Roles for the control plane, the nodes and the dispatcher's service account (IRSA), each with
# only the AWS-managed policies EKS documents as required, or a policy scoped to one bucket.

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name}-cluster"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  for_each = toset(["AmazonEKSClusterPolicy"])

  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_iam_openid_connect_provider" "cluster" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = var.oidc_thumbprints
  tags            = local.tags
}

locals {
  oidc_issuer_host = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

# Each role may be assumed only by its own service account, in its namespace (IRSA).
data "aws_iam_policy_document" "irsa_assume" {
  for_each = {
    dispatcher = var.dispatcher_service_account
    training   = var.training_service_account
  }

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.cluster.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:sub"
      values   = ["system:serviceaccount:${var.dispatcher_namespace}:${each.value}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "dispatcher" {
  name               = "${var.name}-dispatcher"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume["dispatcher"].json
  tags               = local.tags
}

# The dispatcher and MLflow read and write run artifacts; nothing else in AWS.
data "aws_iam_policy_document" "dispatcher" {
  statement {
    sid       = "ListArtifactBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.artifacts.arn]
  }
  statement {
    sid       = "ReadWriteArtifacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
}

resource "aws_iam_policy" "dispatcher" {
  name        = "${var.name}-dispatcher-artifacts"
  description = "Read and write MLflow artifacts in the Oppen artifact bucket"
  policy      = data.aws_iam_policy_document.dispatcher.json
  tags        = local.tags
}

resource "aws_iam_role_policy_attachment" "dispatcher" {
  role       = aws_iam_role.dispatcher.name
  policy_arn = aws_iam_policy.dispatcher.arn
}

# --- Training pods' identity (IRSA): their checkpoints, and nothing else ---------------------

resource "aws_iam_role" "training" {
  name               = "${var.name}-training"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume["training"].json
  tags               = local.tags
}

# Training pods write and read their job's checkpoints under checkpoints/ (OPPEN_CHECKPOINT_URI)
# and log to MLflow over HTTP (its server holds the artifact rights).
data "aws_iam_policy_document" "training" {
  statement {
    sid       = "ListCheckpoints"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["checkpoints/*"]
    }
  }
  statement {
    sid       = "ReadWriteCheckpoints"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.artifacts.arn}/checkpoints/*"]
  }
}

resource "aws_iam_policy" "training" {
  name        = "${var.name}-training-checkpoints"
  description = "Read and write training checkpoints in the Oppen artifact bucket"
  policy      = data.aws_iam_policy_document.training.json
  tags        = local.tags
}

resource "aws_iam_role_policy_attachment" "training" {
  role       = aws_iam_role.training.name
  policy_arn = aws_iam_policy.training.arn
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Endpoint of the Kubernetes API server."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64-encoded CA certificate of the Kubernetes API server."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_oidc_issuer_url" {
  description = "OIDC issuer URL of the cluster, used for IRSA."
  value       = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

output "node_group_names" {
  description = "Names of the managed node groups, keyed by pool (system, cpu, gpu)."
  value       = { for pool, group in aws_eks_node_group.this : pool => group.node_group_name }
}

output "artifact_bucket_name" {
  description = "Name of the S3 bucket holding MLflow artifacts."
  value       = aws_s3_bucket.artifacts.bucket
}

output "artifact_root_uri" {
  description = "MLflow default artifact root in the bucket."
  value       = "s3://${aws_s3_bucket.artifacts.bucket}/mlflow"
}

output "ecr_repository_url" {
  description = "URL of the ECR repository to push the Oppen image to."
  value       = aws_ecr_repository.oppen.repository_url
}

output "db_endpoint" {
  description = "host:port of the PostgreSQL instance."
  value       = aws_db_instance.this.endpoint
}

output "db_address" {
  description = "Host name of the PostgreSQL instance."
  value       = aws_db_instance.this.address
}

output "db_name" {
  description = "Name of the database created on the instance."
  value       = aws_db_instance.this.db_name
}

output "db_username" {
  description = "Master user name of the database."
  value       = aws_db_instance.this.username
}

output "dispatcher_role_arn" {
  description = "ARN of the IAM role the dispatcher's service account assumes (annotate the service account with it)."
  value       = aws_iam_role.dispatcher.arn
}

output "node_role_arn" {
  description = "ARN of the IAM role of the worker nodes."
  value       = aws_iam_role.node.arn
}

output "training_role_arn" {
  description = "ARN of the IAM role the training pods' service account assumes: checkpoints only."
  value       = aws_iam_role.training.arn
}

output "checkpoint_uri" {
  description = "Where training checkpoints outlive their pods (OPPEN_CHECKPOINT_URI)."
  value       = "s3://${aws_s3_bucket.artifacts.bucket}/checkpoints"
}

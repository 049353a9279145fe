output "cluster_name" {
  description = "EKS cluster name; `aws eks update-kubeconfig --name <this>` points kubectl at it."
  value       = module.cluster.cluster_name
}

output "ecr_repository_url" {
  description = "Where to push the Oppen image."
  value       = module.cluster.ecr_repository_url
}

output "artifact_bucket_name" {
  description = "S3 bucket with MLflow artifacts."
  value       = module.cluster.artifact_bucket_name
}

output "db_endpoint" {
  description = "PostgreSQL host:port (private subnets only)."
  value       = module.cluster.db_endpoint
}

output "mlflow_tracking_uri" {
  description = "MLflow inside the cluster; `kubectl -n oppen port-forward svc/oppen-mlflow 5000` reaches it from a laptop."
  value       = module.platform.mlflow_tracking_uri
}

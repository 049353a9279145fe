output "namespace" {
  description = "Namespace that holds the platform."
  value       = module.manifests.namespace_name
}

output "mlflow_tracking_uri" {
  description = "In-cluster MLflow tracking URI."
  value       = "http://oppen-mlflow.${module.manifests.namespace_name}.svc:5000"
}

output "api_url" {
  description = "In-cluster URL of the Oppen API server (OPPEN_SERVER_URL)."
  value       = "http://oppen-api.${module.manifests.namespace_name}.svc:8080"
}

output "dispatcher_service_account" {
  description = "ServiceAccount the dispatcher and training Jobs run as."
  value       = module.manifests.dispatcher_service_account
}

output "priority_classes" {
  description = "Names of the PriorityClasses created for Oppen's priority classes."
  value       = [for key in keys(module.manifests.cluster_scoped) : split("/", key)[1]]
}

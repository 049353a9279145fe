output "namespace" {
  description = "The Namespace object, as YAML."
  value       = yamlencode(local.namespace)
}

output "cluster_scoped" {
  description = "Cluster-scoped objects (the PriorityClasses) as YAML, keyed by kind/name."
  value       = { for key, object in local.priority_classes : key => yamlencode(object) }
}

output "namespaced" {
  description = "Namespaced objects as YAML, keyed by kind/name. Holds a Secret, hence sensitive."
  value       = { for key, object in local.namespaced : key => yamlencode(object) }
  sensitive   = true
}

output "kueue" {
  description = "Kueue's objects (ResourceFlavors, the ClusterQueue, a LocalQueue per team) as YAML, keyed by kind/name; empty without teams. They need Kueue's CRDs in the cluster."
  value       = local.kueue_yaml
}

output "training_service_account" {
  description = "Name of the ServiceAccount training pods run as (no API rights)."
  value       = var.training_service_account
}

output "scheduling_policy_toml" {
  description = "The Oppen settings file the dispatcher mounts."
  value       = local.scheduling_policy_toml
}

output "namespace_name" {
  description = "Name of the namespace that holds the platform."
  value       = var.namespace
}

output "dispatcher_service_account" {
  description = "Name of the ServiceAccount the dispatcher and MLflow run as."
  value       = var.dispatcher_service_account
}

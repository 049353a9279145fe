# The Oppen platform on any Kubernetes cluster: namespace, priority classes, quotas, limits,
# configuration, the dispatcher's identity and RBAC, MLflow and the dispatcher itself.
# The objects are rendered by ./manifests (no provider) and applied here one by one.

module "manifests" {
  source = "./manifests"

  # Each setting as given, or null for the submodule's default (its variables are not nullable).
  namespace                  = try(var.platform.namespace, null)
  image                      = try(var.platform.image, null)
  dispatcher_service_account = try(var.platform.dispatcher_service_account, null)
  dispatcher_role_arn        = try(var.platform.dispatcher_role_arn, null)
  training_image             = try(var.platform.training_image, null)
  training_service_account   = try(var.platform.training_service_account, null)
  training_role_arn          = try(var.platform.training_role_arn, null)
  checkpoint_uri             = try(var.platform.checkpoint_uri, null)
  kueue                      = try(var.platform.kueue, null)
  dispatcher_replicas        = try(var.platform.dispatcher_replicas, null)
  dispatcher_args            = try(var.platform.dispatcher_args, null)
  database_url               = try(var.platform.database_url, null)
  mlflow_backend_store_uri   = try(var.platform.mlflow_backend_store_uri, null)
  mlflow_artifact_root       = try(var.platform.mlflow_artifact_root, null)
  aws_region                 = try(var.platform.aws_region, null)
  pricing_toml               = try(var.platform.pricing_toml, null)
  max_concurrent_jobs        = try(var.platform.max_concurrent_jobs, null)
  general_quota              = try(var.platform.general_quota, null)
  background_quota           = try(var.platform.background_quota, null)
  default_container_limits   = try(var.platform.default_container_limits, null)
  labels                     = try(var.platform.labels, null)
}

resource "kubernetes_manifest" "namespace" {
  manifest = yamldecode(module.manifests.namespace)
}

resource "kubernetes_manifest" "cluster_scoped" {
  for_each = module.manifests.cluster_scoped

  manifest = yamldecode(each.value)
}

resource "kubernetes_manifest" "namespaced" {
  # The keys (kind/name) are not secret; only the Secret's values are.
  for_each = nonsensitive(toset(keys(module.manifests.namespaced)))

  manifest = yamldecode(module.manifests.namespaced[each.key])

  depends_on = [kubernetes_manifest.namespace, kubernetes_manifest.cluster_scoped]
}

resource "kubernetes_manifest" "kueue" {
  for_each = module.manifests.kueue

  manifest = yamldecode(each.value)

  depends_on = [kubernetes_manifest.namespace]
}

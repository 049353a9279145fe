# The Oppen platform on any Kubernetes cluster: namespace, priority classes, quotas, limits,
# configuration, the dispatcher's identity and RBAC, MLflow and the dispatcher itself.
# The objects are rendered by ./manifests (no provider) and applied here one by one.

module "manifests" {
  source = "./manifests"

  namespace                  = var.namespace
  image                      = var.image
  dispatcher_service_account = var.dispatcher_service_account
  dispatcher_role_arn        = var.dispatcher_role_arn
  dispatcher_replicas        = var.dispatcher_replicas
  dispatcher_args            = var.dispatcher_args
  database_url               = var.database_url
  mlflow_backend_store_uri   = var.mlflow_backend_store_uri
  mlflow_artifact_root       = var.mlflow_artifact_root
  aws_region                 = var.aws_region
  pricing_toml               = var.pricing_toml
  max_concurrent_jobs        = var.max_concurrent_jobs
  general_quota              = var.general_quota
  background_quota           = var.background_quota
  default_container_limits   = var.default_container_limits
  labels                     = var.labels
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

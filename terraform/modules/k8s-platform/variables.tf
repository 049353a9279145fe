variable "platform" {
  description = "The platform's settings, passed unchanged to ./manifests, whose variables.tf documents each one (namespace, image, dispatcher_*, training_*, checkpoint_uri, kueue, database_url, mlflow_*, aws_region, pricing_toml, max_concurrent_jobs, *_quota, default_container_limits, labels). Omitted settings take the defaults there; a name that is not one of them is refused."
  type        = any

  validation {
    condition = length(setsubtract(keys(var.platform), [
      "namespace",
      "image",
      "dispatcher_service_account",
      "dispatcher_role_arn",
      "training_image",
      "training_service_account",
      "training_role_arn",
      "checkpoint_uri",
      "kueue",
      "dispatcher_replicas",
      "dispatcher_args",
      "database_url",
      "mlflow_backend_store_uri",
      "mlflow_artifact_root",
      "aws_region",
      "pricing_toml",
      "max_concurrent_jobs",
      "general_quota",
      "background_quota",
      "default_container_limits",
      "labels"
    ])) == 0
    error_message = "platform has a setting ./manifests does not know; see manifests/variables.tf."
  }
}

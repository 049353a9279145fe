variable "namespace" {
  description = "Namespace that holds Oppen's dispatcher, MLflow and training Jobs."
  type        = string
  default     = "oppen"
  nullable    = false
}

variable "image" {
  description = "Oppen container image (repository:tag) run by the dispatcher, MLflow and the training Jobs."
  type        = string
  nullable    = false
}

variable "dispatcher_service_account" {
  description = "Name of the dispatcher's ServiceAccount; must match the IRSA trust policy of the aws-cluster module."
  type        = string
  default     = "oppen-dispatcher"
  nullable    = false
}

variable "training_image" {
  description = "Image training pods run (the Dockerfile's lean `train` target, e.g. repository:tag-train); empty runs them on `image`."
  type        = string
  default     = ""
  nullable    = false
}

variable "training_service_account" {
  description = "Name of the training pods' ServiceAccount: no API rights and no mounted token; must match the aws-cluster module's training role trust."
  type        = string
  default     = "oppen-training"
  nullable    = false
}

variable "training_role_arn" {
  description = "IAM role the training pods' ServiceAccount assumes through IRSA (their checkpoints in S3); empty for none."
  type        = string
  default     = ""
  nullable    = false
}

variable "checkpoint_uri" {
  description = "Where training checkpoints outlive their pods, s3://bucket/prefix (the aws-cluster module's checkpoint_uri); empty keeps them in the pod, lost with it."
  type        = string
  default     = ""
  nullable    = false
}

variable "kueue" {
  description = "Kueue queues for training Jobs (Kueue itself is installed separately): ResourceFlavors on-demand and spot, ClusterQueue oppen with these nominal quotas per flavor, and a LocalQueue oppen-<team> per team. No teams: no Kueue objects, and Jobs are not handed to Kueue."
  type = object({
    teams     = list(string)
    on_demand = object({ cpu = string, memory = string, gpus = number })
    spot      = object({ cpu = string, memory = string, gpus = number })
  })
  default = {
    teams     = []
    on_demand = { cpu = "32", memory = "128Gi", gpus = 4 }
    spot      = { cpu = "64", memory = "256Gi", gpus = 8 }
  }
  nullable = false
}

variable "dispatcher_role_arn" {
  description = "IAM role the dispatcher's ServiceAccount assumes through IRSA; empty for none."
  type        = string
  default     = ""
  nullable    = false
}

variable "dispatcher_replicas" {
  description = "Dispatcher replicas. More than one is safe: a database lease lets one lead at a time and the others take over when it dies."
  type        = number
  default     = 1
  nullable    = false
}

variable "dispatcher_args" {
  description = "Arguments to the `oppen` entry point in the dispatcher container: the API server with the dispatcher beside it."
  type        = list(string)
  default     = ["serve", "--host", "0.0.0.0", "--port", "8080"]
  nullable    = false
}

variable "database_url" {
  description = "SQLAlchemy URL of Oppen's PostgreSQL database (postgresql+psycopg://user:password@host:5432/oppen); stored in a Secret."
  type        = string
  sensitive   = true
  nullable    = false
}

variable "mlflow_backend_store_uri" {
  description = "MLflow backend store URI (postgresql://user:password@host:5432/mlflow); stored in a Secret."
  type        = string
  sensitive   = true
  nullable    = false
}

variable "mlflow_artifact_root" {
  description = "Where MLflow keeps run artifacts, e.g. s3://bucket/mlflow."
  type        = string
  nullable    = false
}

variable "aws_region" {
  description = "AWS region of the artifact bucket, passed to MLflow's S3 client; empty to leave it to the environment."
  type        = string
  default     = ""
  nullable    = false
}

variable "pricing_toml" {
  description = "Contents of the pricing file Oppen reads (app/costs/default_pricing.toml by default)."
  type        = string
  nullable    = false
}

variable "max_concurrent_jobs" {
  description = "Training jobs the dispatcher runs at once."
  type        = number
  default     = 3
  nullable    = false
}

variable "general_quota" {
  description = "ResourceQuota for urgent and normal work: GPUs, CPU cores and memory requested at once."
  type = object({
    gpus   = number
    cpu    = string
    memory = string
  })
  default  = { gpus = 2, cpu = "16", memory = "32Gi" }
  nullable = false
}

variable "background_quota" {
  description = "ResourceQuota for background work: GPUs and memory requested at once."
  type = object({
    gpus   = number
    memory = string
  })
  default  = { gpus = 1, memory = "4Gi" }
  nullable = false
}

variable "default_container_limits" {
  description = "LimitRange defaults for containers that state no resources."
  type = object({
    cpu    = string
    memory = string
  })
  default  = { cpu = "500m", memory = "256Mi" }
  nullable = false
}

variable "labels" {
  description = "Labels added to every object."
  type        = map(string)
  default     = {}
  nullable    = false
}

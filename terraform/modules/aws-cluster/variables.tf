variable "name" {
  description = "Name prefix for every resource; also the EKS cluster name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# --- Network (passed in: the network module, or a deployment's own) ---------------------

variable "vpc_id" {
  description = "VPC the cluster, its nodes and its database run in."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets (load balancers), one per availability zone."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Private subnets (nodes, database), one per availability zone."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids must name at least two subnets (RDS needs two zones)."
  }
}

variable "private_subnet_cidrs" {
  description = "CIDR blocks of the private subnets: the only sources the database accepts connections from."
  type        = list(string)
}

# --- EKS ---------------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "Kubernetes minor version of the EKS control plane."
  type        = string
  default     = "1.31"
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDR blocks allowed to reach the public Kubernetes API endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "node_groups" {
  description = "Managed node groups by name, merged over the defaults (system, cpu and gpu in main.tf): an entry here replaces the default of its name, or adds a group. `pool` becomes the oppen.dev/pool label that Oppen's Kubernetes executor selects on; capacity_type is ON_DEMAND or SPOT; a `gpu` group gets the NVIDIA AMI, the nvidia.com/gpu.present label and the nvidia.com/gpu=present:NoSchedule taint, so only pods that tolerate it (Oppen's GPU jobs) land there."
  type = map(object({
    pool           = string
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
    gpu            = optional(bool, false)
    capacity_type  = optional(string, "ON_DEMAND")
    ami_type       = optional(string)
    disk_size_gb   = optional(number)
    labels         = optional(map(string), {})
  }))
  default = {}

  validation {
    condition     = alltrue([for g in values(var.node_groups) : contains(["ON_DEMAND", "SPOT"], g.capacity_type)])
    error_message = "Every node group's capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "oidc_thumbprints" {
  description = "SHA-1 thumbprints of the EKS OIDC issuer's root CA, for IRSA. The default is the Amazon root CA that every EKS issuer in the commercial partition chains to."
  type        = list(string)
  default     = ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
}

# --- Dispatcher identity (IRSA) ----------------------------------------------------------

variable "dispatcher_namespace" {
  description = "Kubernetes namespace of the Oppen dispatcher's service account."
  type        = string
  default     = "oppen"
}

variable "dispatcher_service_account" {
  description = "Name of the Kubernetes service account the Oppen dispatcher and MLflow run as."
  type        = string
  default     = "oppen-dispatcher"
}

variable "training_service_account" {
  description = "Name of the Kubernetes service account Oppen's training pods run as; it may read and write checkpoints, nothing else."
  type        = string
  default     = "oppen-training"
}

# --- Storage -----------------------------------------------------------------------------

variable "artifact_bucket_name" {
  description = "Name of the S3 bucket for MLflow artifacts. Null derives one from name and the account id."
  type        = string
  default     = null
}

variable "artifact_bucket_force_destroy" {
  description = "Let terraform destroy delete a non-empty artifact bucket. Keep false outside throwaway environments."
  type        = bool
  default     = false
}

variable "ecr_repository_name" {
  description = "Name of the ECR repository for the Oppen image."
  type        = string
  default     = "oppen"
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL database."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_engine_version" {
  description = "PostgreSQL engine version."
  type        = string
  default     = "16.4"
}

variable "db_allocated_storage_gb" {
  description = "Initial storage of the database in GB; it grows on its own up to db_max_allocated_storage_gb."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage_gb" {
  description = "Ceiling of storage autoscaling in GB."
  type        = number
  default     = 100
}

variable "db_username" {
  description = "Master user name of the database."
  type        = string
  default     = "oppen"
}

variable "db_password" {
  description = "Master password of the database. Pass it through TF_VAR_db_password or a secrets manager, never in a committed file."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.db_password) >= 16
    error_message = "db_password must be at least 16 characters."
  }
}

variable "db_multi_az" {
  description = "Run the database with a standby in the second availability zone."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Days of automated database backups to keep."
  type        = number
  default     = 7
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database. Turn off only to tear down a throwaway environment."
  type        = bool
  default     = true
}

variable "db_skip_final_snapshot" {
  description = "Skip the final snapshot when the database is deleted."
  type        = bool
  default     = false
}

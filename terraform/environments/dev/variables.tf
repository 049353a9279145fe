variable "region" {
  description = "AWS region to deploy into."
  type        = string
}

variable "name" {
  description = "Name of the environment; prefixes every AWS resource and names the EKS cluster."
  type        = string
  default     = "oppen-dev"
}

variable "availability_zones" {
  description = "Two availability zones in the region."
  type        = list(string)
}

variable "image_tag" {
  description = "Tag of the Oppen image in the environment's ECR repository."
  type        = string
}

variable "db_password" {
  description = "Master password of the PostgreSQL instance; set TF_VAR_db_password, do not commit it."
  type        = string
  sensitive   = true
}

variable "gpu_capacity_type" {
  description = "ON_DEMAND or SPOT for the GPU training node group."
  type        = string
  default     = "SPOT"
}

variable "gpu_max_nodes" {
  description = "Upper bound of the GPU node group."
  type        = number
  default     = 2
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}

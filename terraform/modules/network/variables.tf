variable "name" {
  description = "Name prefix for every resource."
  type        = string
}

variable "cluster_name" {
  description = "Name of the EKS cluster that will use the subnets (their kubernetes.io/cluster tag)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "The two availability zones the subnets are spread over."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) == 2
    error_message = "availability_zones must name exactly two zones."
  }
}

variable "public_subnet_cidrs" {
  description = "CIDR blocks of the public subnets, one per availability zone (load balancers, NAT)."
  type        = list(string)
  default     = ["10.40.0.0/20", "10.40.16.0/20"]
}

variable "private_subnet_cidrs" {
  description = "CIDR blocks of the private subnets, one per availability zone (nodes, database)."
  type        = list(string)
  default     = ["10.40.128.0/18", "10.40.192.0/18"]
}

variable "single_nat_gateway" {
  description = "One NAT gateway for both zones (cheaper) instead of one per zone (survives a zone outage)."
  type        = bool
  default     = true
}

variable "region" {
  description = "AWS region for every resource (the team's is ca-central-1)."
  type        = string
  default     = "ca-central-1"
}

variable "github_repository" {
  description = "GitHub repository allowed to deploy, as OWNER/NAME."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like OWNER/NAME."
  }
}

variable "release_branch" {
  description = "The only branch whose workflow jobs may assume the deploy and plan roles (needs the repository's OIDC subject template, docs/guide.md)."
  type        = string
  default     = "main"
}

variable "create_github_oidc_provider" {
  description = "Create the GitHub OIDC provider (true), or adopt the account's existing one (false). An account can hold only one per URL."
  type        = bool
  default     = false
}

variable "environments" {
  description = "Deployment environments: the GitHub environment name and its SageMaker endpoint."
  type = map(object({
    endpoint_name = string
  }))
  default = {
    staging    = { endpoint_name = "bikeshare-staging" }
    production = { endpoint_name = "bikeshare-prod" }
  }

  validation {
    condition     = alltrue([for env in values(var.environments) : startswith(env.endpoint_name, "bikeshare-")])
    error_message = "Endpoint names must start with bikeshare- (the IAM policies are scoped to it)."
  }

  validation {
    # Release names are "<endpoint>-<sha7>-<yyyymmddHHMMSS>", at most 63 characters: a longer
    # endpoint name would be cut, and its releases would fall outside "<endpoint>-*".
    condition     = alltrue([for env in values(var.environments) : length(env.endpoint_name) <= 40])
    error_message = "Endpoint names are at most 40 characters (their release names must fit in 63)."
  }
}

variable "adopted_releases" {
  description = "Per environment, the names of endpoint configs and models its endpoint served before bikeshare (the seed's workflows named them freely). The deploy and plan roles may read them and roll back to them; remove them once bikeshare releases have replaced them."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for env in keys(var.adopted_releases) : contains(keys(var.environments), env)])
    error_message = "adopted_releases keys must be environments (keys of var.environments)."
  }

  validation {
    # Exact SageMaker names only: a wildcard here would widen every role's grants.
    condition     = alltrue([for name in flatten(values(var.adopted_releases)) : can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$", name))])
    error_message = "adopted_releases holds exact SageMaker endpoint config and model names (letters, digits, hyphens), no wildcards."
  }
}

variable "ecr_repository_name" {
  description = "ECR repository of the serving image."
  type        = string
  default     = "bikeshare-serving"
}

variable "model_bucket_name" {
  description = "S3 bucket for model archives (globally unique)."
  type        = string
}

variable "model_prefix" {
  description = "Key prefix under which `bikeshare upload-model` stores archives."
  type        = string
  default     = "models"
}

variable "keep_images" {
  description = "How many images the ECR lifecycle policy keeps."
  type        = number
  default     = 30
}

variable "model_version_days" {
  description = "Days before noncurrent model archive versions expire."
  type        = number
  default     = 90
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic; empty for none (subscribe another way)."
  type        = string
  default     = ""
}

variable "latency_alarm_microseconds" {
  description = "ModelLatency average (microseconds, as SageMaker reports it) that raises the latency alarm."
  type        = number
  default     = 200000
}

variable "promotion_plan_environment" {
  description = "Unprotected GitHub environment of the promotion plan job (read-only role; only var.release_branch may assume it)."
  type        = string
  default     = "production-plan"
}

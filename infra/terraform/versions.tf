# Terraform >= 1.10: the S3 backend's native state locking (use_lockfile) arrived in 1.10, so no
# DynamoDB lock table is needed. The seed pinned 1.7.5, which predates it.
terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Exact: provider upgrades change plans; Dependabot proposes them as reviewed PRs. The
      # .terraform.lock.hcl with its checksums is committed from the first real
      # `dagger call terraform-validate` (no provider registry is reachable where this was written).
      version = "6.21.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project    = "bikeshare"
      managed_by = "terraform"
    }
  }
}

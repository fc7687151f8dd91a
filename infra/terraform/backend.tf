# Partial configuration: bucket, key and region come from `terraform init -backend-config=...`
# (see docs/guide.md, "Infrastructure (Terraform)", the bootstrap), so no account-specific value is committed.
terraform {
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

resource "aws_ecr_repository" "serving" {
  name = var.ecr_repository_name
  # Immutable: a tag (the commit SHA) always means the same image; deploys use digests anyway.
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.bikeshare.arn
  }
}

resource "aws_ecr_lifecycle_policy" "serving" {
  repository = aws_ecr_repository.serving.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest ${var.keep_images} images; older releases cannot be rolled back to anyway once their endpoint configs are pruned"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.keep_images
      }
      action = { type = "expire" }
    }]
  })
}

# Logging in to ECR, for every role that pulls or pushes the serving image.
data "aws_iam_policy_document" "ecr_login" {
  statement {
    sid = "EcrLogin"
    # AWS allows no resource scoping for GetAuthorizationToken: the token is account-wide.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
}

# The promotion *plan* job (`promote --dry-run`) runs before anyone approves, so it cannot use the
# production deployer role (that one is bound to the protected `production` environment). It gets
# this read-only role instead, bound to its own unprotected GitHub environment: it can describe
# both endpoints and read the model archive and image manifest the plan checks, and change nothing.
resource "aws_iam_role" "promotion_planner" {
  name                 = "bikeshare-promotion-planner"
  assume_role_policy   = data.aws_iam_policy_document.github_environment_trust[var.promotion_plan_environment].json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "promotion_planner" {
  name   = "plan-promotion"
  role   = aws_iam_role.promotion_planner.id
  policy = data.aws_iam_policy_document.promotion_planner.json
}

data "aws_iam_policy_document" "promotion_planner" {
  source_policy_documents = [
    data.aws_iam_policy_document.ecr_login.json,
    data.aws_iam_policy_document.read_model_archives.json,
  ]

  statement {
    sid     = "DescribeBothEndpoints"
    actions = ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel", "sagemaker:ListTags"]
    resources = flatten([for env in values(var.environments) : concat(
      ["${local.sagemaker}:endpoint/${env.endpoint_name}"],
      local.readable_release_arns[env.endpoint_name],
    )])
  }

  statement {
    sid       = "ReadImageManifest"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.serving.arn]
  }
}

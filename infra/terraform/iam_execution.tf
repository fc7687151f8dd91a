# The role SageMaker endpoints run as: read the model prefix, pull the serving image, write logs
# and metrics. Nothing else.
resource "aws_iam_role" "sagemaker_execution" {
  name               = "bikeshare-sagemaker-execution"
  assume_role_policy = data.aws_iam_policy_document.sagemaker_trust.json
}

data "aws_iam_policy_document" "sagemaker_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role_policy" "sagemaker_execution" {
  name   = "serve-bikeshare-models"
  role   = aws_iam_role.sagemaker_execution.id
  policy = data.aws_iam_policy_document.sagemaker_execution.json
}

data "aws_iam_policy_document" "sagemaker_execution" {
  source_policy_documents = [
    data.aws_iam_policy_document.ecr_login.json,
    data.aws_iam_policy_document.read_model_archives.json,
  ]

  statement {
    sid = "PullServingImage"
    # A pull needs these two (ECR's pull-only managed policy has no BatchCheckLayerAvailability).
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.serving.arn]
  }

  statement {
    sid = "ReadRollbackAlarms"
    # Deployment guardrails: SageMaker checks that the execution role may describe every
    # auto-rollback alarm a blue/green update names (`bikeshare deploy --alarm`, alarms.tf).
    actions = ["cloudwatch:DescribeAlarms"]
    resources = [for env in values(var.environments) :
      "arn:${data.aws_partition.current.partition}:cloudwatch:${var.region}:${data.aws_caller_identity.current.account_id}:alarm:${env.endpoint_name}-*"
    ]
  }

  statement {
    sid       = "WriteEndpointLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/sagemaker/Endpoints/bikeshare-*"]
  }

  statement {
    sid = "PublishMetrics"
    # PutMetricData has no resource-level permissions; the namespace condition scopes it.
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/Endpoints"] # AWS/ namespaces are reserved for AWS itself
    }
  }
}

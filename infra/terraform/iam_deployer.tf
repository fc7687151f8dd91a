# One deployer role per GitHub environment, assumed by the pipeline with GitHub OIDC. The
# endpoint itself and its auto scaling are owned by the pipeline (`bikeshare deploy`), not by
# Terraform: a deploy creates configs, updates the endpoint and (re-)registers scaling, so
# Terraform only grants the permissions for that and never manages those resources.
locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  sagemaker = "arn:${local.partition}:sagemaker:${var.region}:${local.account}"
  # Production promotes what staging serves, so it reads the staging endpoint too.
  readable_endpoints = {
    for env, cfg in var.environments : env => distinct(concat(
      [cfg.endpoint_name],
      env == "production" && contains(keys(var.environments), "staging") ? [var.environments["staging"].endpoint_name] : [],
    ))
  }
}

resource "aws_iam_role" "deployer" {
  for_each             = var.environments
  name                 = "bikeshare-deployer-${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.github_environment_trust[each.key].json
  max_session_duration = 3600 # the pipeline renews OIDC sessions during long rollouts
}

resource "aws_iam_role_policy" "deployer" {
  for_each = var.environments
  name     = "release-${each.value.endpoint_name}"
  role     = aws_iam_role.deployer[each.key].id
  policy   = data.aws_iam_policy_document.deployer[each.key].json
}

data "aws_iam_policy_document" "deployer" {
  #checkov:skip=CKV_AWS_111:Only the statements AWS cannot scope use "*" (ECR token, SageMaker List*, scaling targets with random ids, target-tracking alarms); each says why
  #checkov:skip=CKV_AWS_356:Same statements as above: their actions take no resource ARN that a deploy could name in advance
  for_each                = var.environments
  source_policy_documents = [data.aws_iam_policy_document.ecr_login.json]

  statement {
    sid = "ReleaseOwnEndpoint"
    actions = [
      "sagemaker:CreateModel",
      "sagemaker:CreateEndpointConfig",
      "sagemaker:CreateEndpoint",
      "sagemaker:UpdateEndpoint",
      "sagemaker:DeleteModel",
      "sagemaker:DeleteEndpointConfig",
      "sagemaker:DeleteEndpoint",
      "sagemaker:DescribeModel",
      "sagemaker:DescribeEndpointConfig",
      "sagemaker:DescribeEndpoint",
      "sagemaker:InvokeEndpoint",
      "sagemaker:AddTags", # CreateModel/CreateEndpointConfig with Tags need it
      "sagemaker:ListTags",
    ]
    resources = [
      "${local.sagemaker}:endpoint/${each.value.endpoint_name}",
      "${local.sagemaker}:endpoint-config/${each.value.endpoint_name}-*",
      "${local.sagemaker}:model/${each.value.endpoint_name}-*",
    ]
  }

  statement {
    sid     = "ReadPromotionSource"
    actions = ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel", "sagemaker:ListTags"]
    resources = flatten([for name in local.readable_endpoints[each.key] : [
      "${local.sagemaker}:endpoint/${name}",
      "${local.sagemaker}:endpoint-config/${name}-*",
      "${local.sagemaker}:model/${name}-*",
    ]])
  }

  statement {
    sid = "ListReleasesToPrune"
    # SageMaker's List* calls allow no resource scoping.
    actions   = ["sagemaker:ListEndpointConfigs", "sagemaker:ListModels", "sagemaker:ListEndpoints"]
    resources = ["*"]
  }

  statement {
    sid       = "PassExecutionRoleToSageMakerOnly"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.sagemaker_execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  statement {
    sid       = "ModelArchives"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"]
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/*"]
  }

  statement {
    sid       = "ModelArchiveExistence"
    actions   = ["s3:ListBucket"] # a missing key is then a 404, not an ambiguous 403
    resources = [aws_s3_bucket.models.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.model_prefix}/*"]
    }
  }

  statement {
    sid       = "EncryptedArtifacts"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.bikeshare.arn]
  }

  statement {
    sid = "ServingImage"
    actions = concat(
      ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer"],
      # Staging builds and publishes the image; production only deploys what staging verified.
      each.key == "staging" ? ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"] : [],
    )
    resources = [aws_ecr_repository.serving.arn]
  }

  statement {
    sid = "DeployOwnedAutoScaling"
    # Scalable targets are identified by random ids, not by endpoint name, so AWS offers no
    # resource scoping that a deploy could name in advance; Describe* allow none at all.
    actions = [
      "application-autoscaling:RegisterScalableTarget",
      "application-autoscaling:DeregisterScalableTarget",
      "application-autoscaling:DescribeScalableTargets",
      "application-autoscaling:PutScalingPolicy",
      "application-autoscaling:DescribeScalingPolicies",
      # Target tracking creates and removes its CloudWatch alarms on the caller's behalf.
      "cloudwatch:PutMetricAlarm",
      "cloudwatch:DescribeAlarms",
      "cloudwatch:DeleteAlarms",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "AutoScalingServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["sagemaker.application-autoscaling.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadEndpointLogs"
    actions   = ["logs:FilterLogEvents", "logs:DescribeLogStreams"]
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/sagemaker/Endpoints/${each.value.endpoint_name}:*"]
  }
}

# One deployer role per GitHub environment, assumed by the pipeline with GitHub OIDC. The
# endpoint itself and its auto scaling are owned by the pipeline (`bikeshare deploy`), not by
# Terraform: a deploy creates configs, updates the endpoint and (re-)registers scaling, so
# Terraform only grants the permissions for that and never manages those resources.
locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  sagemaker = "arn:${local.partition}:sagemaker:${var.region}:${local.account}"
  # Each endpoint's releases: bikeshare names them "<endpoint>-<sha>-<time>"; releases made
  # before bikeshare (the seed's workflows) are adopted by name through var.adopted_releases.
  release_arns = {
    for env, cfg in var.environments : cfg.endpoint_name => [
      "${local.sagemaker}:endpoint-config/${cfg.endpoint_name}-*",
      "${local.sagemaker}:model/${cfg.endpoint_name}-*",
    ]
  }
  adopted_config_arns = {
    for env, cfg in var.environments : cfg.endpoint_name => [
      for name in lookup(var.adopted_releases, env, []) : "${local.sagemaker}:endpoint-config/${lower(name)}"
    ]
  }
  # What the roles may read: bikeshare's releases and the adopted ones (configs and models).
  readable_release_arns = {
    for env, cfg in var.environments : cfg.endpoint_name => concat(
      local.release_arns[cfg.endpoint_name],
      local.adopted_config_arns[cfg.endpoint_name],
      [for name in lookup(var.adopted_releases, env, []) : "${local.sagemaker}:model/${lower(name)}"],
    )
  }
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
  #checkov:skip=CKV_AWS_111:Only the statements AWS cannot scope use "*" (ECR token, SageMaker List*, scaling targets with random ids, Application Auto Scaling's nameless CloudWatch validation calls); each says why
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
      # Application Auto Scaling checks the caller for it on RegisterScalableTarget.
      "sagemaker:UpdateEndpointWeightsAndCapacities",
    ]
    resources = concat(
      ["${local.sagemaker}:endpoint/${each.value.endpoint_name}"],
      local.release_arns[each.value.endpoint_name],
    )
  }

  statement {
    sid     = "ReadPromotionSource"
    actions = ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel", "sagemaker:ListTags"]
    resources = flatten([for name in local.readable_endpoints[each.key] : concat(
      ["${local.sagemaker}:endpoint/${name}"],
      local.readable_release_arns[name],
    )])
  }

  statement {
    sid = "RollBackToAdoptedReleases"
    # Pointing the endpoint back at a release from before bikeshare (var.adopted_releases);
    # never creating, tagging or deleting one.
    actions = ["sagemaker:UpdateEndpoint"]
    resources = concat(
      ["${local.sagemaker}:endpoint/${each.value.endpoint_name}"],
      local.adopted_config_arns[each.value.endpoint_name],
    )
  }

  statement {
    sid = "ListReleasesToPrune"
    # SageMaker's List* calls allow no resource scoping.
    actions   = ["sagemaker:ListEndpointConfigs"]
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

  # Staging uploads model archives and publishes the image; production only deploys what
  # staging verified, so it reads and never writes.
  statement {
    sid = "ModelArchives"
    actions = concat(
      ["s3:GetObject"],
      each.key == "staging" ? ["s3:PutObject", "s3:PutObjectTagging"] : [],
    )
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/*"]
  }

  statement {
    sid = "ModelArchiveExistence"
    # S3 answers a missing key with 404 only to a caller allowed s3:ListBucket, else 403. A
    # HEAD or GET carries no s3:prefix, so a prefix condition here would never match it.
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.models.arn]
  }

  statement {
    sid       = "EncryptedArtifacts"
    actions   = concat(["kms:Decrypt"], each.key == "staging" ? ["kms:GenerateDataKey"] : [])
    resources = [aws_kms_key.bikeshare.arn]
  }

  statement {
    sid = "ServingImage"
    # Every deploy reads the image's manifest and config (labels) before changing anything.
    actions = concat(
      ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
      each.key == "staging" ? [
        "ecr:DescribeImages", # `bikeshare image-digest`, in publish
        "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload", "ecr:PutImage",
      ] : [],
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
    ]
    resources = ["*"]
  }

  statement {
    sid = "TargetTrackingAlarms"
    # Application Auto Scaling validates the caller's CloudWatch permissions with calls that name
    # no alarm (DescribeAlarms, PutMetricAlarm and DeleteAlarms without parameters; its user
    # guide, "Permissions validation for API calls on target resources"), so no alarm ARN can
    # scope these; the Deny below keeps the Terraform alarms out of reach.
    actions   = ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]
    resources = ["*"]
  }

  statement {
    sid    = "NeverTouchRollbackAlarms"
    effect = "Deny"
    # The per-endpoint rollback alarms (alarms.tf) are production's guardrail: no deployer may
    # change or delete them, whichever endpoint it deploys.
    actions = ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:SetAlarmState", "cloudwatch:DisableAlarmActions"]
    resources = [for env in values(var.environments) :
      "arn:${local.partition}:cloudwatch:${var.region}:${local.account}:alarm:${env.endpoint_name}-*"
    ]
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
    actions   = ["logs:FilterLogEvents"]
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/sagemaker/Endpoints/${each.value.endpoint_name}:*"]
  }
}

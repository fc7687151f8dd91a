# One customer-managed key for the project's data at rest: images, model archives, alarm topic.
resource "aws_kms_key" "bikeshare" {
  description             = "bikeshare: ECR images, model archives, alarm notifications"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "bikeshare" {
  name          = "alias/bikeshare"
  target_key_id = aws_kms_key.bikeshare.key_id
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource means this key; the account-root statement is AWS's default key policy
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource means this key only
  #checkov:skip=CKV_AWS_109:Key administration stays with the account (IAM decides who), as in AWS's default key policy
  # The account administers the key (the AWS default); every use below is also gated by the
  # principals' own IAM policies.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy, "*" means this key
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # CloudWatch alarms publish to the encrypted SNS topic.
  statement {
    sid       = "CloudWatchPublishesAlarms"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    # Only this account's alarms, so no other account's CloudWatch can use the key (confused
    # deputy; the SNS guide's key policy for encrypted topics).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:cloudwatch:${var.region}:${data.aws_caller_identity.current.account_id}:alarm:*"]
    }
  }
}

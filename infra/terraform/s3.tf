resource "aws_s3_bucket" "models" {
  #checkov:skip=CKV_AWS_18:Only the deployer roles write and SageMaker reads here; account-level CloudTrail data events audit that, a log bucket would have no reader
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new archives; deploys are driven by the pipeline
  #checkov:skip=CKV_AWS_144:Archives are rebuilt from git by the pipeline; a replica adds cost and no recovery path
  bucket = var.model_bucket_name
}

resource "aws_s3_bucket_versioning" "models" {
  bucket = aws_s3_bucket.models.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "models" {
  bucket = aws_s3_bucket.models.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.bikeshare.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "models" {
  bucket                  = aws_s3_bucket.models.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_policy" "models" {
  bucket = aws_s3_bucket.models.id
  policy = data.aws_iam_policy_document.models_bucket.json
}

data "aws_iam_policy_document" "models_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.models.arn,
      "${aws_s3_bucket.models.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # A served key must never change: SageMaker reads ModelDataUrl's current version, so an
  # overwrite changes what a release serves. S3 Object Lock would not stop that (it keeps the old
  # version; the new one becomes current). S3 refuses a PutObject carrying `If-None-Match: *`
  # when the key exists, so denying every PutObject without that header makes each key under the
  # prefix write-once, for every principal (AWS S3 user guide, "Enforce conditional writes on
  # Amazon S3 buckets"). `bikeshare upload-model` sends it. Multipart uploads and CopyObject into
  # the prefix are refused too: they cannot carry the header on every part; archives are small.
  statement {
    sid       = "DenyOverwritingModelArchives"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["true"]
    }
  }

  # ... and with the header, only `*` ("create, never overwrite"): any other value (an ETag) is
  # not a create-only write. S3 answers those 501 today; this keeps the rule the policy's own,
  # not an accident of what S3 implements. A separate statement: conditions in one are ANDed.
  statement {
    sid       = "DenyNonCreatingWritesOfModelArchives"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "s3:if-none-match"
      values   = ["*"]
    }
  }

  # Deleting a key would make the write-once rule moot (a delete marker, then a fresh PUT); a
  # model archive leaves only by a change to this policy. Lifecycle expiry is not a request.
  statement {
    sid       = "DenyDeletingModelArchives"
    effect    = "Deny"
    actions   = ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "models" {
  bucket = aws_s3_bucket.models.id

  rule {
    id     = "expire-replaced-versions"
    status = "Enabled"
    filter {}

    # Archives are content-addressed (<prefix>/<sha256>/model.tar.gz) and write-once under the
    # model prefix (the bucket policy), so only objects outside it leave noncurrent versions.
    noncurrent_version_expiration {
      noncurrent_days = var.model_version_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# Reading model archives, for the roles that read but never write them: the SageMaker execution
# role and the promotion planner. The project key also encrypts the ECR repository, so the same
# Decrypt lets the execution role pull the image.
data "aws_iam_policy_document" "read_model_archives" {
  statement {
    sid       = "ReadModelArchives"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/*"]
  }

  statement {
    sid       = "DecryptWithProjectKey"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.bikeshare.arn]
  }
}

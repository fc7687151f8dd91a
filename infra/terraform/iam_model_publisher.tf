# Data scientists ship a model by uploading it (`bikeshare upload-model`) and naming its URI in
# the S3_MODEL_TAR variable; CD deploys it. Attach this document to their IAM group or SSO
# permission set (as an inline policy): it writes archives under the model prefix and nothing
# else. It cannot deploy, read other prefixes, or delete, so an upload never changes what serves.
data "aws_iam_policy_document" "model_publisher" {
  statement {
    sid = "UploadModelArchives"
    # GetObject: upload-model's HEAD, which makes a second upload of the same archive a no-op.
    # PutObjectTagging: the upload tags the object with the commit it was trained at.
    actions   = ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"]
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/*"]
  }

  statement {
    sid = "ModelArchiveExistence"
    # S3 answers a missing key with 404 only to a caller allowed s3:ListBucket, else 403.
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.models.arn]
  }

  statement {
    sid = "EncryptModelArchives"
    # Through S3 only: the same key encrypts the image repository and the alarm topic. No
    # Decrypt: upload-model's HEAD reads metadata, and S3 decrypts nothing for it.
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.bikeshare.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

output "ecr_repository_url" {
  description = "Where the pipeline publishes the serving image (GitHub variable ECR_REPOSITORY_URL)."
  value       = aws_ecr_repository.serving.repository_url
}

output "model_bucket" {
  description = "Bucket for model archives: `bikeshare upload-model --bucket`."
  value       = aws_s3_bucket.models.bucket
}

output "deployer_role_arns" {
  description = "Deployer role per GitHub environment (environment variable DEPLOYER_ROLE_ARN)."
  value       = { for env, role in aws_iam_role.deployer : env => role.arn }
}

output "sagemaker_execution_role_arn" {
  description = "Execution role passed to SageMaker (GitHub variable SAGEMAKER_EXECUTION_ROLE_ARN; not a secret)."
  value       = aws_iam_role.sagemaker_execution.arn
}

output "alarm_names" {
  description = "Alarms to pass as --alarm for auto-rollback, per environment."
  value = {
    for env in keys(var.environments) : env => [
      aws_cloudwatch_metric_alarm.errors_5xx[env].alarm_name,
      aws_cloudwatch_metric_alarm.latency[env].alarm_name,
    ]
  }
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "promotion_planner_role_arn" {
  description = "Read-only role of the promotion plan job (variable DEPLOYER_ROLE_ARN of the production-plan environment)."
  value       = aws_iam_role.promotion_planner.arn
}

output "model_publisher_policy_json" {
  description = "Inline policy for the data scientists' group or SSO permission set: upload models only."
  value       = data.aws_iam_policy_document.model_publisher.json
}

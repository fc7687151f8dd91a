# Per-endpoint alarms. `bikeshare deploy --alarm NAME` hands them to SageMaker's blue/green
# AutoRollbackConfiguration, and they notify the topic so a rollback reaches people.
resource "aws_sns_topic" "alarms" {
  name              = "bikeshare-endpoint-alarms"
  kms_master_key_id = aws_kms_key.bikeshare.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "errors_5xx" {
  for_each            = var.environments
  alarm_name          = "${each.value.endpoint_name}-5xx"
  alarm_description   = "Model container answered 5xx on ${each.value.endpoint_name}"
  namespace           = "AWS/SageMaker"
  metric_name         = "Invocation5XXErrors"
  dimensions          = { EndpointName = each.value.endpoint_name, VariantName = "AllTraffic" }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 2
  threshold           = 5
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "latency" {
  for_each            = var.environments
  alarm_name          = "${each.value.endpoint_name}-latency"
  alarm_description   = "ModelLatency average above ${var.latency_alarm_microseconds} us on ${each.value.endpoint_name} (SageMaker reports microseconds)"
  namespace           = "AWS/SageMaker"
  metric_name         = "ModelLatency"
  dimensions          = { EndpointName = each.value.endpoint_name, VariantName = "AllTraffic" }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.latency_alarm_microseconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

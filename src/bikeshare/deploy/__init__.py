"""The release engine: model upload, deploy, smoke, rollback, status and promote on SageMaker."""

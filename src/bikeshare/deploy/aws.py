"""boto3 clients configured the same way for every command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bikeshare.errors import BikeshareError

if TYPE_CHECKING:
    import boto3

# botocore's "standard" retry mode: exponential backoff with jitter on throttling and transient
# errors, shared retry quota; 8 attempts ride out a SageMaker control-plane throttle burst.
RETRY_CONFIG = {"mode": "standard", "max_attempts": 8}


@dataclass(frozen=True)
class AwsTarget:
    """Where AWS calls go: a region and, for the local stand-in or VPC endpoints, a URL.

    Without an explicit endpoint_url, boto3 itself honours AWS_ENDPOINT_URL (and the per-service
    AWS_ENDPOINT_URL_<SERVICE>) from the environment.
    """

    region: str
    endpoint_url: str | None = None
    session: boto3.Session | None = None

    def client(self, service: str) -> Any:
        """A client for one AWS service with the shared retry policy."""
        import boto3
        from botocore.config import Config

        session = self.session or boto3.Session(region_name=self.region)
        return session.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(retries=RETRY_CONFIG, connect_timeout=10, read_timeout=70),
        )


def error_code(error: Exception) -> str:
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(error, "response", None)
    return (response or {}).get("Error", {}).get("Code", "")


def error_message(error: Exception) -> str:
    """The AWS error message of a botocore ClientError, or str(error)."""
    response = getattr(error, "response", None)
    return (response or {}).get("Error", {}).get("Message", "") or str(error)


def is_not_found(error: Exception) -> bool:
    """SageMaker says "Could not find ..." in a ValidationException for missing resources."""
    return error_code(error) == "ValidationException" and "Could not find" in error_message(error)


# What AWS says when the caller's credentials are expired, unknown or malformed.
AUTH_ERROR_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    }
)


def rejected_credentials(error: Exception) -> BikeshareError | None:
    """A clear message when AWS refused the credentials themselves, else None."""
    code = error_code(error)
    if code not in AUTH_ERROR_CODES:
        return None
    return BikeshareError(
        f"AWS rejected the credentials ({code}: {error_message(error)}); get fresh ones (re-run "
        "the job, `aws sso login`, or check the OIDC role) and retry; nothing was changed"
    )


def explain_credentials_error(error: Exception) -> BikeshareError:
    """Turn botocore's credential failures into a message that says what to set."""
    return BikeshareError(
        f"no usable AWS credentials ({error}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
        "AWS_PROFILE, or pass the GitHub OIDC token and --deployer-role-arn; nothing was changed"
    )

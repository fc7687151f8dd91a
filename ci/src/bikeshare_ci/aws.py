"""How release functions reach AWS: GitHub OIDC or access keys, always as Dagger secrets."""

from __future__ import annotations

import dagger
from dagger import object_type


@object_type
class AwsAccess:
    """Credentials chosen once (`with-aws-oidc` or `with-aws-keys`) and handed to each release
    container through secret APIs only, never as plain environment variables."""

    region: str
    deployer_role_arn: str = ""
    request_url: dagger.Secret | None = None
    request_token: dagger.Secret | None = None
    access_key_id: dagger.Secret | None = None
    secret_access_key: dagger.Secret | None = None
    session_token: dagger.Secret | None = None
    endpoint_url: str = ""

    def apply(self, container: dagger.Container) -> dagger.Container:
        """The container with these credentials: secrets as secret variables, the rest plain."""
        container = container.with_env_variable("AWS_REGION", self.region)
        if self.endpoint_url:  # LocalStack, the local stand-in, a private endpoint
            container = container.with_env_variable("AWS_ENDPOINT_URL", self.endpoint_url)
        if self.request_url is not None and self.request_token is not None:
            # `bikeshare` exchanges the Actions token for the role itself, and again before the
            # session expires, so long rollouts keep valid credentials.
            return (
                container.with_secret_variable("ACTIONS_ID_TOKEN_REQUEST_URL", self.request_url)
                .with_secret_variable("ACTIONS_ID_TOKEN_REQUEST_TOKEN", self.request_token)
                .with_env_variable("BIKESHARE_DEPLOYER_ROLE_ARN", self.deployer_role_arn)
            )
        if self.access_key_id is not None and self.secret_access_key is not None:
            container = container.with_secret_variable(
                "AWS_ACCESS_KEY_ID", self.access_key_id
            ).with_secret_variable("AWS_SECRET_ACCESS_KEY", self.secret_access_key)
            if self.session_token is not None:
                container = container.with_secret_variable("AWS_SESSION_TOKEN", self.session_token)
        return container

    def cli_args(self) -> list[str]:
        """The `bikeshare` release options that say where AWS is."""
        endpoint = ["--endpoint-url", self.endpoint_url] if self.endpoint_url else []
        return ["--region", self.region, *endpoint]

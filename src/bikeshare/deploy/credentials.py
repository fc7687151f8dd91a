"""AWS credentials for the release commands: the usual chain, or GitHub OIDC done in-process.

In GitHub Actions the pipeline gets the Actions ID-token request URL and bearer token as Dagger
secrets; here they are exchanged for a web-identity token (audience sts.amazonaws.com) and then
for role credentials with AssumeRoleWithWebIdentity. The credentials are refreshable: a canary or
linear rollout can outlast a one-hour session, so botocore asks for a fresh GitHub token and a
new session shortly before expiry. Tokens and keys are never printed or logged.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bikeshare.errors import BikeshareError

if TYPE_CHECKING:
    import boto3

AUDIENCE = "sts.amazonaws.com"
REQUEST_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
# Names of variables, not secrets.
REQUEST_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105  # nosec B105
ROLE_ENV = "BIKESHARE_DEPLOYER_ROLE_ARN"


@dataclass(frozen=True)
class GithubOidc:
    """What the OIDC exchange needs; the request token is a secret and never shown."""

    request_url: str
    request_token: str = field(repr=False)
    role_arn: str
    session_name: str = "bikeshare-release"
    duration_seconds: int = 3600

    @classmethod
    def from_environment(cls, role_arn: str | None = None) -> GithubOidc | None:
        """The exchange configured by GitHub's variables, or None when they are absent."""
        url, token = os.environ.get(REQUEST_URL_ENV), os.environ.get(REQUEST_TOKEN_ENV)
        role = role_arn or os.environ.get(ROLE_ENV)
        if not (url and token):
            if role_arn:
                raise BikeshareError(
                    f"--deployer-role-arn given but {REQUEST_URL_ENV} and {REQUEST_TOKEN_ENV} are "
                    "not set; they exist only in a GitHub Actions job with `permissions: id-token: "
                    "write`; nothing was changed"
                )
            return None
        if not role:
            raise BikeshareError(
                f"GitHub OIDC token variables are set but no role to assume: pass "
                f"--deployer-role-arn or set {ROLE_ENV}; nothing was changed"
            )
        return cls(request_url=url, request_token=token, role_arn=role)


def fetch_web_identity_token(oidc: GithubOidc, timeout: float = 10.0) -> str:
    """Ask GitHub for an ID token with the STS audience."""
    separator = "&" if "?" in oidc.request_url else "?"
    url = f"{oidc.request_url}{separator}audience={urllib.parse.quote(AUDIENCE)}"
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise BikeshareError(f"{REQUEST_URL_ENV} must be an https URL")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, headers={"Authorization": f"bearer {oidc.request_token}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310  # nosec B310
            value = json.loads(answer.read()).get("value")
    except urllib.error.HTTPError as error:
        raise BikeshareError(
            f"GitHub refused the OIDC token request (HTTP {error.code}); the job needs "
            "`permissions: id-token: write` and a fresh request token; nothing was changed"
        ) from None
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as error:
        raise BikeshareError(f"could not get a GitHub OIDC token: {error}") from None
    if not isinstance(value, str) or not value:
        raise BikeshareError("GitHub's OIDC answer had no token value")
    return value


def assume_role(oidc: GithubOidc, region: str, endpoint_url: str | None) -> dict[str, Any]:
    """Exchange a fresh GitHub token for role credentials, in botocore's refresh format."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    sts = boto3.client(
        "sts",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(signature_version=UNSIGNED),
    )
    token = fetch_web_identity_token(oidc)
    try:
        credentials = sts.assume_role_with_web_identity(
            RoleArn=oidc.role_arn,
            RoleSessionName=oidc.session_name,
            WebIdentityToken=token,
            DurationSeconds=oidc.duration_seconds,
        )["Credentials"]
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        raise BikeshareError(
            f"AssumeRoleWithWebIdentity for {oidc.role_arn} failed ({code}) for the token "
            f"subject {token_subject(token)!r}. The roles trust only "
            "'repo:OWNER/NAME:environment:ENV:ref:refs/heads/BRANCH' (the release branch); a "
            "subject without ':ref:' means the repository's OIDC subject template is not set "
            '(docs/guide.md, Configuration, "Environments"). Nothing was changed'
        ) from None
    return {
        "access_key": credentials["AccessKeyId"],
        "secret_key": credentials["SecretAccessKey"],
        "token": credentials["SessionToken"],
        "expiry_time": credentials["Expiration"].isoformat(),
    }


def token_subject(token: str) -> str:
    """The `sub` claim of a JWT (a claim, not a secret), or "unreadable"."""
    import base64
    import json

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])
    except (IndexError, KeyError, TypeError, ValueError):
        return "unreadable"


def oidc_session(oidc: GithubOidc, region: str, endpoint_url: str | None) -> boto3.Session:
    """A boto3 session whose credentials renew themselves through GitHub OIDC."""
    import boto3
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    credentials = RefreshableCredentials.create_from_metadata(
        metadata=assume_role(oidc, region, endpoint_url),
        refresh_using=lambda: assume_role(oidc, region, endpoint_url),
        method="assume-role-with-web-identity",
    )
    core = botocore.session.get_session()
    core._credentials = credentials  # botocore's documented hook for custom refreshable creds
    core.set_config_variable("region", region)
    return boto3.Session(botocore_session=core, region_name=region)

"""AWS credentials for the release commands: the usual chain, or GitHub OIDC done in-process.

In GitHub Actions the pipeline gets the Actions ID-token request URL and bearer token as Dagger
secrets; here they are exchanged for a web-identity token (audience sts.amazonaws.com) and then
for role credentials with AssumeRoleWithWebIdentity. The credentials are refreshable: a canary or
linear rollout can outlast a one-hour session, so botocore asks for a fresh GitHub token and a
new session shortly before expiry. Tokens and keys are never printed or logged.
"""

from __future__ import annotations

import http.client
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
    """Ask GitHub for an ID token with the STS audience.

    Every failure is one BikeshareError that never carries the request token or the ID token:
    they would otherwise reach a CI log in a traceback (a header value in ValueError, say)."""
    url = request_url_with_audience(oidc.request_url)
    if not _header_safe(oidc.request_token):
        raise BikeshareError(
            f"{REQUEST_TOKEN_ENV} holds characters an HTTP header cannot carry (a pasted "
            "newline?); nothing was sent and nothing was changed"
        )
    request = urllib.request.Request(  # noqa: S310 - scheme checked by request_url_with_audience
        url, headers={"Authorization": f"bearer {oidc.request_token}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310  # nosec B310
            body = answer.read()
    except urllib.error.HTTPError as error:
        raise BikeshareError(
            f"GitHub refused the OIDC token request (HTTP {error.code}); the job needs "
            "`permissions: id-token: write` and a fresh request token; nothing was changed"
        ) from None
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError is an OSError
        reason = _redacted(f"{type(error).__name__}: {error}", oidc.request_token)
        raise BikeshareError(
            f"could not get a GitHub OIDC token ({reason}); nothing was changed"
        ) from None
    return _token_value(body)


def request_url_with_audience(request_url: str) -> str:
    """GitHub's token request URL with the STS audience added, once it is known to be https, or
    plain http to this machine only (a test's token endpoint): never to another host."""
    refused = BikeshareError(
        f"{REQUEST_URL_ENV} must be an https URL (plain http only to 127.0.0.1, ::1 or localhost), "
        "without a user name or password; nothing was sent"
    )
    try:
        parts = urllib.parse.urlsplit(request_url)
        host, _ = parts.hostname, parts.port  # .port raises ValueError for a port out of range
    except ValueError:
        raise refused from None
    local = host in ("127.0.0.1", "::1", "localhost")
    if not host or parts.username is not None or parts.password is not None:
        raise refused
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise refused
    separator = "&" if "?" in request_url else "?"
    return f"{request_url}{separator}audience={urllib.parse.quote(AUDIENCE)}"


def _header_safe(value: str) -> bool:
    """Visible ASCII only: what http.client would otherwise refuse, quoting the value."""
    return bool(value) and all(33 <= ord(character) <= 126 for character in value)


def _redacted(text: str, secret: str) -> str:
    """text on one line, with the secret (and its header form) cut out, just in case."""
    return " ".join(text.replace(secret, "***").split())


def _token_value(body: bytes) -> str:
    """The ID token in GitHub's answer `{"value": "<jwt>"}`; the token itself is never quoted."""
    try:
        answer = json.loads(body)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise BikeshareError(
            "GitHub's OIDC answer is not JSON; is ACTIONS_ID_TOKEN_REQUEST_URL GitHub's? "
            "nothing was changed"
        ) from None
    value = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise BikeshareError("GitHub's OIDC answer had no token value; nothing was changed")
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

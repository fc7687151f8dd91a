"""GitHub OIDC exchanged in-process: a real HTTP token endpoint, real STS calls to the stand-in."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from bikeshare.deploy.credentials import GithubOidc, fetch_web_identity_token, oidc_session
from bikeshare.errors import BikeshareError
from support.account import github_token
from support.aws import REGION, Aws

REQUEST_TOKEN = "gh-request-token-do-not-print"  # noqa: S105 - a test value


class TokenEndpoint(BaseHTTPRequestHandler):
    """What GitHub's ACTIONS_ID_TOKEN_REQUEST_URL does: bearer in, {"value": jwt} out.

    The tokens are those of a job bound to `environment`, on `ref`, with `subject` keys."""

    issued: ClassVar[list[str]] = []
    refuse = False
    environment = "staging"
    ref = "refs/heads/main"
    subject: ClassVar[tuple[str, ...]] = ("repo", "context", "ref")

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        authorised = self.headers.get("Authorization") == f"bearer {REQUEST_TOKEN}"
        if self.refuse or not authorised or query.get("audience") != ["sts.amazonaws.com"]:
            self.send_response(401)
            self.end_headers()
            return
        token = github_token(self.environment, ref=self.ref, subject_template=self.subject)
        self.issued.append(token)
        body = json.dumps({"value": token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def github() -> Iterator[str]:
    TokenEndpoint.issued, TokenEndpoint.refuse = [], False
    TokenEndpoint.environment, TokenEndpoint.ref = "staging", "refs/heads/main"
    TokenEndpoint.subject = ("repo", "context", "ref")
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token?api-version=2.0"
    server.shutdown()


ROLE = "arn:aws:iam::123456789012:role/bikeshare-deployer-staging"


def test_oidc_session_assumes_the_role(aws: Aws, github: str) -> None:
    oidc = GithubOidc(github, REQUEST_TOKEN, ROLE)
    session = oidc_session(oidc, REGION, aws.url)
    identity = session.client("sts", endpoint_url=aws.url).get_caller_identity()
    assert ":assumed-role/bikeshare-deployer-staging/bikeshare-release" in identity["Arn"]
    assert len(TokenEndpoint.issued) == 1
    assert REQUEST_TOKEN not in repr(oidc)


@pytest.mark.parametrize(
    ("environment", "ref", "subject", "refused_subject"),
    [
        # a workflow on another branch that names the protected environment
        ("staging", "refs/heads/feature", ("repo", "context", "ref"),
         "repo:octo-org/bikeshare:environment:staging:ref:refs/heads/feature"),
        # GitHub's default subject carries no branch: refused until the template is set
        ("staging", "refs/heads/main", ("repo", "context"),
         "repo:octo-org/bikeshare:environment:staging"),
        # the plan environment's job cannot take the deployer role
        ("production-plan", "refs/heads/main", ("repo", "context", "ref"),
         "repo:octo-org/bikeshare:environment:production-plan:ref:refs/heads/main"),
    ],
)  # fmt: skip
def test_the_trust_policy_admits_only_the_environment_on_the_release_branch(
    aws: Aws, github: str, environment: str, ref: str, subject: tuple[str, ...],
    refused_subject: str,
) -> None:  # fmt: skip
    TokenEndpoint.environment, TokenEndpoint.ref, TokenEndpoint.subject = environment, ref, subject
    with pytest.raises(BikeshareError, match="AccessDenied") as refused:
        oidc_session(GithubOidc(github, REQUEST_TOKEN, ROLE), REGION, aws.url)
    assert f"for the token subject {refused_subject!r}" in str(refused.value)
    assert "OIDC subject template" in str(refused.value)


def test_credentials_are_refreshed_with_a_fresh_github_token(aws: Aws, github: str) -> None:
    # 15-minute sessions sit inside botocore's refresh window at once, so every use renews:
    # the same path a two-hour canary takes when its one-hour session nears expiry.
    oidc = GithubOidc(github, REQUEST_TOKEN, ROLE, duration_seconds=900)
    session = oidc_session(oidc, REGION, aws.url)
    sts = session.client("sts", endpoint_url=aws.url)
    sts.get_caller_identity()
    sts.get_caller_identity()
    assert len(TokenEndpoint.issued) >= 2


def test_refused_token_request_says_what_the_job_needs(github: str) -> None:
    TokenEndpoint.refuse = True
    with pytest.raises(BikeshareError, match="id-token: write") as refused:
        fetch_web_identity_token(GithubOidc(github, REQUEST_TOKEN, ROLE))
    assert REQUEST_TOKEN not in str(refused.value)


def test_oidc_from_environment(monkeypatch: pytest.MonkeyPatch, github: str) -> None:
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_URL", raising=False)
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", raising=False)
    assert GithubOidc.from_environment() is None
    with pytest.raises(BikeshareError, match="exist only in a GitHub Actions job"):
        GithubOidc.from_environment(ROLE)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", github)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
    monkeypatch.delenv("BIKESHARE_DEPLOYER_ROLE_ARN", raising=False)
    with pytest.raises(BikeshareError, match="no role to assume"):
        GithubOidc.from_environment()
    assert GithubOidc.from_environment(ROLE).role_arn == ROLE

"""GitHub OIDC exchanged in-process: a real HTTP token endpoint, real STS calls to the stand-in."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from bikeshare import cli
from bikeshare.deploy.credentials import (
    GithubOidc,
    fetch_web_identity_token,
    oidc_session,
    request_url_with_audience,
)
from bikeshare.errors import BikeshareError
from support.account import github_token
from support.aws import REGION, Aws

REQUEST_TOKEN = "gh-request-token-do-not-print"  # noqa: S105 - a test value


class TokenEndpoint(BaseHTTPRequestHandler):
    """What GitHub's ACTIONS_ID_TOKEN_REQUEST_URL does: bearer in, {"value": jwt} out.

    The tokens are those of a job bound to `environment`, on `ref`, with `subject` keys."""

    issued: ClassVar[list[str]] = []
    refuse = False
    answer: ClassVar[bytes | None] = None  # a malformed answer to send instead of a token
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
        body = self.answer if self.answer is not None else json.dumps({"value": token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def github() -> Iterator[str]:
    TokenEndpoint.issued, TokenEndpoint.refuse, TokenEndpoint.answer = [], False, None
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


# --- Issue 20 item 10: malformed OIDC inputs, one line, never the secret; local means local ---

JWT_SECRET = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzZWNyZXQifQ.c2VjcmV0LXNpZ25hdHVyZQ"  # noqa: S105


@pytest.mark.parametrize(
    ("url", "token", "answer", "expected"),
    [
        ("http://[::1", REQUEST_TOKEN, None, "must be an https URL"),
        ("http://127.0.0.1:99999/token", REQUEST_TOKEN, None, "must be an https URL"),
        ("ftp://127.0.0.1/token", REQUEST_TOKEN, None, "must be an https URL"),
        ("https://", REQUEST_TOKEN, None, "must be an https URL"),
        ("{github}", REQUEST_TOKEN + "\nX-Injected: 1", None, "cannot carry"),
        ("{github}", REQUEST_TOKEN + " ", None, "cannot carry"),
        ("{github}", REQUEST_TOKEN, b"<html>" + JWT_SECRET.encode(), "is not JSON"),
        ("{github}", REQUEST_TOKEN, b"\xff\xfe", "is not JSON"),
        ("{github}", REQUEST_TOKEN, json.dumps([JWT_SECRET]).encode(), "no token value"),
        ("{github}", REQUEST_TOKEN, b'{"value": ""}', "no token value"),
        ("{github}", REQUEST_TOKEN, b'{"value": 7}', "no token value"),
        ("http://127.0.0.1:1/token", REQUEST_TOKEN, None, "could not get a GitHub OIDC token"),
    ],
)  # fmt: skip
def test_malformed_oidc_inputs_are_one_line_without_the_secret(
    url: str,
    token: str,
    answer: bytes | None,
    expected: str,
    github: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The request token and the ID token never reach stdout or stderr, traceback or not."""
    TokenEndpoint.answer = answer
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url.replace("{github}", github))
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", token)
    argv = ["status", "--endpoint-name", "bikeshare-staging", "--region", REGION]

    status = cli.main([*argv, "--deployer-role-arn", ROLE])

    out, err = capsys.readouterr()
    assert status == 1
    (line,) = err.splitlines()
    assert line.startswith("bikeshare status: error: ")
    assert expected in line
    for secret in (REQUEST_TOKEN, JWT_SECRET, "eyJ"):
        assert secret not in out + err


@pytest.mark.parametrize(
    "url",
    [
        "https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0",
        "http://127.0.0.1:8080/token",
        "http://localhost/token",
        "http://[::1]:8080/token",
    ],
)
def test_https_or_this_machine_is_accepted_for_the_token_request(url: str) -> None:
    assert request_url_with_audience(url).endswith("audience=sts.amazonaws.com")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1@evil.example/token",  # userinfo: the host is evil.example
        "http://localhost.evil.example/token",
        "http://127.0.0.1.evil.example/token",
        "http://localhost:80@evil.example/token",
        "http://evil.example/token",
        "http://[::2]/token",
        "https://user:secret@pipelines.actions.githubusercontent.com/token",
    ],
)
def test_a_token_request_to_another_host_in_plain_http_is_refused(url: str) -> None:
    with pytest.raises(BikeshareError, match="must be an https URL") as refused:
        request_url_with_audience(url)
    assert "secret" not in str(refused.value)

"""A real image registry for the stand-in's ECR: Debian's docker-registry (distribution 2.8).

Its htpasswd user and password are exactly what the stand-in's ECR GetAuthorizationToken
returns (`AWS` / `<account>-auth-token`), so `bikeshare ecr-login`, `docker login` and the
deploy's manifest checks work against it as against ECR.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from support import free_port

ACCOUNT = "123456789012"
USERNAME, PASSWORD = "AWS", f"{ACCOUNT}-auth-token"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def available() -> bool:
    """Whether this machine has the registry and htpasswd (Debian: docker-registry,
    apache2-utils)."""
    return bool(shutil.which("docker-registry") and shutil.which("htpasswd"))


class LocalRegistry:
    """docker-registry on a free loopback port with basic auth, storage in a temp dir."""

    def __init__(
        self, listen_host: str = "127.0.0.1", advertised_host: str = "", port: int = 0
    ) -> None:
        """Listen on `listen_host` (on `port`, or a free one); ECR's token names
        `advertised_host` (default: the same), the address a Dagger engine and its containers
        use to reach this machine."""
        self.root = Path(tempfile.mkdtemp(prefix="standin-registry-"))
        port = port or free_port()
        self._listen = f"{listen_host}:{port}"
        self._local = f"127.0.0.1:{port}" if listen_host == "0.0.0.0" else self._listen
        self.address = f"{advertised_host or listen_host}:{port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalRegistry:
        htpasswd = subprocess.run(
            ["htpasswd", "-Bbn", USERNAME, PASSWORD], capture_output=True, text=True, check=True
        ).stdout
        (self.root / "htpasswd").write_text(htpasswd)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}, "
            "delete: {enabled: true}}\n"
            f"http: {{addr: '{self._listen}'}}\n"
            f"auth: {{htpasswd: {{realm: standin, path: {self.root / 'htpasswd'}}}}}\n"
        )
        self._process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{self._local}/v2/", timeout=1).status_code == 401:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def push_manifest(
        self, repository: str, tag: str, labels: dict[str, str], media_type: str = DOCKER_MANIFEST
    ) -> str:
        """Push an image config (with labels) and a manifest over the HTTP API; return
        `registry/repository@sha256:...`. No layers: enough for manifest and label checks."""
        auth = (USERNAME, PASSWORD)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        base = f"http://{self.address}/v2/{repository}"
        upload = httpx.post(f"{base}/blobs/uploads/", auth=auth, timeout=10)
        upload.raise_for_status()
        location = upload.headers["location"]
        separator = "&" if "?" in location else "?"
        target = location if location.startswith("http") else f"http://{self.address}{location}"
        httpx.put(
            f"{target}{separator}digest={config_digest}",
            content=config,
            auth=auth,
            headers={"Content-Type": "application/octet-stream"},
            timeout=10,
        ).raise_for_status()
        config_type = (
            "application/vnd.oci.image.config.v1+json"
            if media_type == OCI_MANIFEST
            else "application/vnd.docker.container.image.v1+json"
        )
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {"mediaType": config_type, "size": len(config), "digest": config_digest},
                "layers": [],
            }
        ).encode()
        answer = httpx.put(
            f"{base}/manifests/{tag}",
            content=manifest,
            auth=auth,
            headers={"Content-Type": media_type},
            timeout=10,
        )
        answer.raise_for_status()
        return f"{self.address}/{repository}@{answer.headers['docker-content-digest']}"

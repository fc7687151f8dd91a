"""`bikeshare probe`, the image-test check's client, against servers that are not healthy."""

from __future__ import annotations

import json
from pathlib import Path

from support import ServeProcess, free_port, run_cli


def test_a_port_nobody_listens_on_is_named_with_the_reason(tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"dataframe_records": [{"hour": 8}]}))
    url = f"http://127.0.0.1:{free_port()}"
    probed = run_cli("probe", url, "--payload", str(payload), "--startup-seconds", "1", check=False)
    assert probed.returncode == 1
    assert f"{url}/ping did not answer 200 within 1 s" in probed.stderr
    assert "Connection refused" in probed.stderr


def test_a_healthy_server_that_rejects_the_payload_fails_the_probe(
    server: ServeProcess, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"dataframe_records": [{"hour": 8}]}))  # columns missing
    probed = run_cli("probe", server.base_url, "--payload", str(payload), check=False)
    assert probed.returncode == 1
    assert "/invocations answered 400" in probed.stderr


def test_a_healthy_server_passes_with_the_model_archive_example(
    server: ServeProcess, model_archive: Path
) -> None:
    probed = run_cli("probe", server.base_url, "--model-archive", str(model_archive))
    assert "1 prediction(s)" in probed.stdout

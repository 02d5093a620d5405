"""deploy/: the container image's entry point and settings, run here as the image would run them
(no container runtime on the test machines)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ecert.config import Settings
from tests.helpers import settings_env
from tests.servers import free_port

DEPLOY = Path(__file__).parent.parent / "deploy"


def _image() -> tuple[dict[str, str], list[str]]:
    """The Containerfile's final ENV values and its ENTRYPOINT + CMD."""
    text = (DEPLOY / "Containerfile").read_text().replace("\\\n", " ")
    final = text[text.rindex("\nFROM ") :]
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", final, re.MULTILINE):
        for pair in shlex.split(line):
            name, _, value = pair.partition("=")
            env[name] = value
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.+\])$", final, re.MULTILINE)[1])  # type: ignore[index]
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", final, re.MULTILINE)[1])  # type: ignore[index]
    return env, [*entry, *cmd]


def _option(args: list[str], name: str, value: str) -> list[str]:
    index = args.index(name)
    return [*args[: index + 1], value, *args[index + 2 :]]


@pytest.mark.postgres  # the image runs in production mode: PostgreSQL and Redis
def test_ops_image_entry_point_serves_ready_on_a_read_only_data_dir(
    settings: Settings, tmp_path: Path
) -> None:
    image_env, command = _image()
    assert command[:2] == ["ecert", "serve"]
    assert "--no-migrate" in command
    # The image's root file system is read-only: nothing may need to write in the data dir. A
    # path below a regular file cannot be created or written even by root (the tests may be).
    blocker = tmp_path / "read-only"
    blocker.write_text("")
    data_dir = blocker / "data"
    port = free_port()
    args = _option(_option(command[1:], "--host", "127.0.0.1"), "--port", str(port))
    deployment = {k: v for k, v in settings_env(settings).items() if v and k != "ECERT_DATA_DIR"}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ECERT_")},
        **image_env,
        "PATH": os.environ["PATH"],
        **deployment,
        "ECERT_DATA_DIR": str(data_dir),
        "ECERT_LOG_LEVEL": "WARNING",
    }
    assert env["ECERT_ENV"] == "production"
    process = subprocess.Popen(
        [sys.executable, "-m", "ecert.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline, status, body = time.monotonic() + 60, None, {}
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                status, body = response.status_code, response.json()
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        assert status == 200, body
        assert body["status"] == "ready"
        assert body["schema"] == "current"
        assert blocker.read_text() == ""
        # SIGTERM drains (ECERT_DRAIN_GRACE_S) then shuts down within the graceful timeout.
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=float(image_env["ECERT_DRAIN_GRACE_S"]) + 15)
        assert time.monotonic() - started >= float(image_env["ECERT_DRAIN_GRACE_S"]) - 0.5
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_ops_serve_passes_its_timeouts_and_proxies_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn
    from click.testing import CliRunner

    from ecert.cli import serve as serve_command
    from ecert.cli.main import main
    from ecert.config import get_settings

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setattr(serve_command, "run_with_runtime", lambda work: None)
    monkeypatch.setenv("ECERT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ECERT_SERVE_KEEP_ALIVE_S", "90")
    monkeypatch.delenv("ECERT_TRUSTED_PROXIES", raising=False)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(
            main,
            ["serve", "--timeout-graceful-shutdown", "7", "--forwarded-allow-ips", "10.0.0.0/8"],
        )
        assert ok.exit_code == 0, ok.output
        assert seen["timeout_keep_alive"] == 90  # from the setting
        assert seen["timeout_graceful_shutdown"] == 7  # from the option
        assert seen["proxy_headers"] is False  # ecert resolves X-Forwarded-For itself
        assert os.environ["ECERT_TRUSTED_PROXIES"] == "10.0.0.0/8"  # what the workers read
        bad = runner.invoke(main, ["serve", "--forwarded-allow-ips", "not-a-net"])
        assert bad.exit_code == 2
        assert "not a network" in bad.output
    finally:
        os.environ.pop("ECERT_TRUSTED_PROXIES", None)
        get_settings.cache_clear()

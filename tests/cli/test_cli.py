"""The ``ecert`` command: help, migrations, client registration output."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.cli.main import main
from ecert.config import get_settings


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ECERT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ECERT_LOG_JSON", "false")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "db", "clients", "demo"):
        assert command in result.output


def test_db_upgrade_creates_the_embedded_database(cli_env: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (cli_env / "data" / "ecert.db").exists()


def test_clients_add_prints_id_and_secret_once(cli_env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(
        main,
        [
            "clients",
            "add",
            "--kind",
            "institution",
            "--name",
            "某医院",
            "--code",
            "H37010200001",
            "--level",
            "3",
            "--area",
            "370102",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    # Institutions also get their national gateway signing key, shown once.
    assert set(printed) == {"client_id", "client_secret", "gateway_key"}
    assert len(printed["client_secret"]) >= 32
    assert len(printed["gateway_key"]) >= 32
    assert printed["gateway_key"] != printed["client_secret"]
    # An existing client gets a new one (the old one stops); a channel has none to get.
    again = runner.invoke(main, ["clients", "gateway-key", printed["client_id"]])
    assert again.exit_code == 0, again.output
    issued = json.loads(again.output)
    assert issued["client_id"] == printed["client_id"]
    assert issued["gateway_key"] != printed["gateway_key"]
    with sqlite3.connect(cli_env / "data" / "ecert.db") as db:
        (sealed,) = db.execute(
            "SELECT gateway_key_cipher FROM clients WHERE client_id = ?", (printed["client_id"],)
        ).fetchone()
    assert issued["gateway_key"].encode() not in sealed  # sealed, not in clear
    assert runner.invoke(main, ["clients", "gateway-key", "cha_unknown"]).exit_code != 0


def test_clients_add_with_public_key_prints_no_secret(cli_env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    pem = cli_env / "key.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = runner.invoke(
        main,
        ["clients", "add", "--kind", "channel", "--name", "App", "--public-key-file", str(pem)],
    )
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.output)) == ["client_id"]


def test_institution_without_code_is_a_clear_error(cli_env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(main, ["clients", "add", "--kind", "institution", "--name", "X"])
    assert result.exit_code != 0
    assert "--code" in result.output


def test_finding_09_clients_add_sets_a_rate_limit(cli_env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    add = ["clients", "add", "--kind", "channel", "--name", "Big app"]
    result = runner.invoke(main, [*add, "--rate-limit", "30000"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert set(printed) == {"client_id", "client_secret"}  # the printed JSON is unchanged
    with sqlite3.connect(cli_env / "data" / "ecert.db") as db:
        row = db.execute(
            "SELECT rate_limit FROM clients WHERE client_id = ?", (printed["client_id"],)
        ).fetchone()
    assert row == (30000,)
    refused = runner.invoke(main, [*add, "--rate-limit", "0"])
    assert refused.exit_code != 0
    assert "--rate-limit" in refused.output


def test_ops_clients_list_shows_every_client_without_secrets(cli_env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    added = runner.invoke(main, ["clients", "add", "--kind", "channel", "--name", "某渠道"])
    created = json.loads(added.output)
    listed = runner.invoke(main, ["clients", "list"])
    assert listed.exit_code == 0, listed.output
    assert created["client_id"] in listed.output
    assert "某渠道" in listed.output
    assert "active" in listed.output
    assert created["client_secret"] not in listed.output
    assert "hmac-sha256" not in listed.output


def test_ops_clients_disable_marks_the_client_and_refuses_unknown_ids(cli_env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    created = json.loads(
        runner.invoke(main, ["clients", "add", "--kind", "channel", "--name", "c"]).output
    )
    disabled = runner.invoke(main, ["clients", "disable", created["client_id"]])
    assert disabled.exit_code == 0, disabled.output
    assert json.loads(disabled.output) == {"client_id": created["client_id"], "active": False}
    assert "disabled" in runner.invoke(main, ["clients", "list"]).output
    unknown = runner.invoke(main, ["clients", "disable", "nobody"])
    assert unknown.exit_code == 1
    assert "no client" in unknown.output

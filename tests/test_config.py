"""Settings fail closed: unknown names, out-of-range values, production without its essentials."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecert.cli.main import main
from ecert.config import ConfigurationError, get_settings, redis_cluster_nodes, settings_from_env

PG_URL = "postgresql+asyncpg://ecert@127.0.0.1:1/ecert"


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No inherited ECERT_* variable; the data directory in tmp_path; settings re-read."""

    for name in [n for n in os.environ if n.startswith("ECERT_") and n != "ECERT_TEST_BACKENDS"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ECERT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _one_sentence(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_ops_misspelt_variable_is_refused_with_a_suggestion(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECERT_DATABSE_URL", PG_URL)
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 2
    line = _one_sentence(result.output)
    assert "ECERT_DATABSE_URL" in line
    assert "did you mean ECERT_DATABASE_URL?" in line
    assert not (clean_env / "data" / "ecert.db").exists()  # no SQLite file upgraded instead


def test_ops_postgresql_without_keys_writes_no_key_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECERT_DATABASE_URL", PG_URL)
    monkeypatch.setenv("ECERT_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("ECERT_ISSUER_URL", "https://ecert.example")
    monkeypatch.setenv("ECERT_ISSUER_AREA", "370102")
    result = CliRunner().invoke(main, ["keys", "list"])
    assert result.exit_code == 2
    line = _one_sentence(result.output)
    assert "ECERT_PII_KEYS" in line
    assert "ECERT_HASH_KEY" in line
    assert not (clean_env / "data" / "keys.json").exists()
    assert not (clean_env / "ecert-data").exists()


def test_ops_production_names_every_missing_essential(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECERT_ENV", "production")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 2
    line = _one_sentence(result.output)
    for name in ("ECERT_DATABASE_URL", "ECERT_REDIS_URL", "ECERT_ISSUER_URL", "ECERT_PII_KEYS"):
        assert name in line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ECERT_QR_TTL_S", "5000"),
        ("ECERT_QR_TTL_S", "soon"),
        ("ECERT_LEEWAY_S", "-1"),
        ("ECERT_REDIS_TIMEOUT_S", "0"),
        ("ECERT_ISSUER_AREA", "37"),
        ("ECERT_LOG_LEVEL", "LOUD"),
        ("ECERT_ENV", "prod"),
        ("ECERT_OTEL_SAMPLE_RATIO", "1.5"),
    ],
)
def test_ops_out_of_range_value_is_one_sentence(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 2
    line = _one_sentence(result.output)
    assert name in line
    assert "not valid" in line


def test_ops_malformed_key_file_is_one_sentence(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = clean_env / "keys.json"
    keys.write_text('{"pii_keys": {"k1": "AAAA"}, "hash_key": "AAAA"}')  # no "active"
    monkeypatch.setenv("ECERT_KEY_FILE", str(keys))
    result = CliRunner().invoke(main, ["keys", "list"])
    assert result.exit_code == 2
    assert "key file" in _one_sentence(result.output)


def test_ops_wrong_pii_key_for_the_database_is_one_sentence(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECERT_PII_KEYS", f"a1:{_key()}")
    monkeypatch.setenv("ECERT_HASH_KEY", _key())
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(main, ["keys", "rotate"]).exit_code == 0
    monkeypatch.setenv("ECERT_PII_KEYS", f"a1:{_key()}")  # another key under the same id
    get_settings.cache_clear()
    # serve loads the key ring before starting uvicorn: the wrong key stops it there.
    result = runner.invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "do not decrypt" in _one_sentence(result.output)


def test_ops_embedded_default_still_generates_its_keys(clean_env: Path) -> None:
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    result = CliRunner().invoke(main, ["keys", "list"])
    assert result.exit_code == 0, result.output
    assert (clean_env / "data" / "keys.json").exists()


def test_ops_development_mode_relaxes_production_but_never_generates_keys(
    clean_env: Path,
) -> None:
    settings = settings_from_env({"ECERT_DATABASE_URL": PG_URL, "ECERT_ENV": "development"})
    assert not settings.production
    assert not settings.embedded
    with pytest.raises(ConfigurationError, match="ECERT_DEMO_SIGNIN"):
        settings_from_env(
            {
                "ECERT_ENV": "production",
                "ECERT_DATABASE_URL": PG_URL,
                "ECERT_REDIS_URL": "redis://x",
                "ECERT_ISSUER_URL": "https://ecert.example",
                "ECERT_ISSUER_AREA": "370102",
                "ECERT_PII_KEYS": f"k:{_key()}",
                "ECERT_HASH_KEY": _key(),
                "ECERT_DEMO_SIGNIN": "true",
            }
        )


def test_ops_serve_with_an_unreachable_database_is_one_sentence(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECERT_ENV", "development")
    monkeypatch.setenv("ECERT_DATABASE_URL", "postgresql+asyncpg://ecert:pw@127.0.0.1:1/ecert")
    monkeypatch.setenv("ECERT_PII_KEYS", f"k:{_key()}")
    monkeypatch.setenv("ECERT_HASH_KEY", _key())
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 1
    line = _one_sentence(result.output)
    assert "does not answer" in line
    assert "pw" not in line


def test_redis_cluster_url_is_parsed_or_refused(clean_env: Path) -> None:
    url = "redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002"
    assert redis_cluster_nodes(url) == (
        "redis+cluster",
        "app",
        "s@cret",
        [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)],
    )
    assert settings_from_env({}, redis_url=url).redis_url == url
    for bad in ("redis+cluster://10.0.0.1", "redis+cluster://h:1,h:x", "redis+cluster://h:1/0"):
        with pytest.raises(ConfigurationError, match="ECERT_REDIS_URL is not a cluster URL"):
            settings_from_env({}, redis_url=bad)
    with pytest.raises(ConfigurationError, match="must start with redis://"):
        settings_from_env({}, redis_url="http://10.0.0.1:6379")


def test_read_replica_needs_a_postgresql_primary(clean_env: Path) -> None:
    with pytest.raises(ConfigurationError, match="ECERT_DATABASE_READ_URL"):
        settings_from_env({}, database_read_url=PG_URL)  # the embedded SQLite has no replica
    with pytest.raises(ConfigurationError, match="ECERT_DATABASE_READ_URL"):
        settings_from_env({}, env="development", database_url=PG_URL, database_read_url="x")
    with pytest.raises(ConfigurationError, match="ECERT_DATABASE_READ_MAX_LAG_S"):
        settings_from_env({"ECERT_DATABASE_READ_MAX_LAG_S": "0"})
    given = settings_from_env(
        {}, env="development", database_url=PG_URL, database_read_url=PG_URL.replace(":1/", ":2/")
    )
    assert given.database_read_max_lag_s == 5.0

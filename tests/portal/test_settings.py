from __future__ import annotations

from pathlib import Path

import pytest

from portal.settings import DEFAULT_MAX_UPLOAD_BYTES, Settings, SettingsError


def test_defaults_run_on_one_machine(tmp_path: Path) -> None:
    settings = Settings.from_environ({"PORTAL_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'portal.db'}"
    assert settings.storage.kind == "file" and settings.storage.path == tmp_path / "blobs"
    assert settings.key_dir == tmp_path / "keys"
    assert settings.max_upload_bytes == DEFAULT_MAX_UPLOAD_BYTES == 2 * 1024**3
    assert str(settings.clamd) == "unix:///var/run/clamav/clamd.ctl"
    witness = settings.audit_witness
    assert witness is not None and witness.path == tmp_path / "witness" / "audit.jsonl"


def test_production_values_are_understood() -> None:
    settings = Settings.from_environ(
        {
            "PORTAL_DATABASE_URL": "postgresql://portal@db.internal:5432/portal",
            "PORTAL_STORAGE": "s3://records/portal/blobs",
            "PORTAL_S3_ENDPOINT_URL": "https://s3.internal",
            "PORTAL_CLAMD": "tcp://clamd.internal:3310",
            "PORTAL_MAX_UPLOAD_BYTES": "1_000_000",
            "PORTAL_PUBLIC_URL": "https://portal.example.gov.uk/",
            "PORTAL_AUDIT_WITNESS": "s3://witness/portal/audit",
        }
    )
    witness = settings.audit_witness
    assert witness is not None and (witness.kind, witness.bucket) == ("s3", "witness")
    assert witness.prefix == "portal/audit"
    assert settings.database_url == "postgresql+psycopg://portal@db.internal:5432/portal"
    assert (settings.storage.bucket, settings.storage.prefix) == ("records", "portal/blobs")
    assert (settings.clamd.host, settings.clamd.port) == ("clamd.internal", 3310)
    assert settings.max_upload_bytes == 1_000_000
    assert settings.uses_tls and settings.public_url == "https://portal.example.gov.uk"


def test_settings_cannot_change_after_reading() -> None:
    settings = Settings.from_environ({})
    with pytest.raises(AttributeError):
        settings.max_upload_bytes = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORTAL_MAX_UPLOAD_BYTES", "lots"),
        ("PORTAL_MAX_UPLOAD_BYTES", "-5"),
        ("PORTAL_MAX_UPLOAD_BYTES", "0"),
        ("PORTAL_CLAMD", "localhost:3310"),
        ("PORTAL_CLAMD", "tcp://clamd"),
        ("PORTAL_STORAGE", "ftp://somewhere"),
        ("PORTAL_STORAGE", "s3://"),
        ("PORTAL_DATABASE_URL", "mysql://root@localhost/portal"),
        ("PORTAL_S3_ENDPOINT_URL", "s3.internal:8333"),
        ("PORTAL_PUBLIC_URL", "portal.example"),
        ("PORTAL_LOG_LEVEL", "loud"),
        ("PORTAL_AUDIT_WITNESS", "ftp://somewhere"),
        ("PORTAL_AUDIT_WITNESS", "s3://bucket"),
        ("PORTAL_AUDIT_WITNESS", "file:///a/folder/"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({name: value})
    message = str(caught.value)
    assert name in message and repr(value) in message and "Expected" in message


def test_the_database_password_comes_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "db_password"
    secret.write_text("s3cr3t/with:odd@chars\n")
    settings = Settings.from_environ(
        {
            "PORTAL_DATABASE_URL": "postgresql://portal@db:5432/portal",
            "PORTAL_DATABASE_PASSWORD_FILE": str(secret),
        }
    )
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    assert (url.username, url.password, url.host, url.database) == (
        "portal",
        "s3cr3t/with:odd@chars",
        "db",
        "portal",
    )
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "content"),
    [
        ("sqlite:///x.db", "pw"),  # SQLite has no password
        ("postgresql://portal:inline@db/portal", "pw"),  # two passwords
        ("postgresql://db/portal", "pw"),  # no user
        ("postgresql://portal@db/portal", ""),  # empty file
    ],
)
def test_a_bad_password_file_is_refused_by_name(tmp_path: Path, url: str, content: str) -> None:
    secret = tmp_path / "db_password"
    secret.write_text(content)
    env = {"PORTAL_DATABASE_URL": url, "PORTAL_DATABASE_PASSWORD_FILE": str(secret)}
    with pytest.raises(SettingsError, match="PORTAL_DATABASE_PASSWORD_FILE"):
        Settings.from_environ(env)
    missing = {**env, "PORTAL_DATABASE_PASSWORD_FILE": str(tmp_path / "absent")}
    with pytest.raises(SettingsError, match="PORTAL_DATABASE_PASSWORD_FILE"):
        Settings.from_environ(missing)

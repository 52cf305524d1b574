"""Settings: read once from ``PORTAL_*`` environment variables into one frozen object.

Nothing else in the portal reads the environment. A bad value fails fast with a message that names
the variable, the value and what would have been accepted, so that an operator can fix it without
reading the code.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from portal.errors import Invalid
from storage import InvalidInput
from storage.address import KeyServiceAddress, parse_key_service_address

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3  # 2 GiB
DEBIAN_CLAMD_SOCKET = "unix:///var/run/clamav/clamd.ctl"


class SettingsError(Invalid):
    """A ``PORTAL_*`` variable has a value the portal cannot use."""


@dataclass(frozen=True)
class ClamdAddress:
    """Where clamd listens: a Unix socket path or a TCP host and port."""

    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.path}"
        return f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class StorageLocation:
    """Where blobs live: a local folder or an S3 bucket with an optional key prefix."""

    kind: str  # "file" or "s3"
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""

    def __str__(self) -> str:
        if self.kind == "file":
            return f"file://{self.path}"
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class SmtpAddress:
    """The SMTP relay that destruction notices go through: ``smtp://`` (plain) or ``smtps://``
    (TLS from the first byte), without credentials."""

    host: str
    port: int
    tls: bool = False

    def __str__(self) -> str:
        return f"{'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class AlertThresholds:
    """When the audit log's anomaly rules raise an alert (``PORTAL_ALERT_*``)."""

    bulk_downloads: int = 20  # more than this many downloads by one user within an hour
    bulk_documents: int = 10  # more than this many different documents by one user in an hour
    failed_sign_ins: int = 5  # this many failed sign-in steps in an hour, per account or address
    refusals: int = 10  # more than this many refused requests by one user within an hour


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str = field(repr=False)  # may hold a password (PORTAL_DATABASE_PASSWORD_FILE)
    storage: StorageLocation
    s3_endpoint_url: str | None
    key_dir: Path
    clamd: ClamdAddress
    max_upload_bytes: int
    public_url: str
    log_level: str
    # Destruction notices by e-mail: off unless PORTAL_SMTP_URL is set (notices stay in the portal).
    smtp: SmtpAddress | None = None
    notice_from: str = "portal@localhost"
    # The key service every node shares (PORTAL_KMS); None: the key folder PORTAL_KEY_DIR.
    kms: KeyServiceAddress | None = None
    # How long audit events are kept (PORTAL_AUDIT_RETENTION_DAYS; six years by default):
    # `portal audit dispose` and the worker dispose of older ones behind a signed epoch.
    audit_retention_days: int = 2192
    # Where every signed audit checkpoint is also kept, outside the database and its backups
    # (PORTAL_AUDIT_WITNESS: file:///PATH or s3://BUCKET/PREFIX; default $PORTAL_HOME/witness).
    audit_witness: StorageLocation | None = None
    alert_thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    # The person at the command line (PORTAL_OPERATOR, the e-mail of their account): audited
    # commands act as them unless --by names someone else (portal/accounts/operators.py).
    operator: str | None = None
    # The reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    # (PORTAL_TRUSTED_PROXIES: addresses or CIDR networks; default none): from any other peer those
    # headers are ignored, so a caller cannot choose the address the audit log and throttle see.
    trusted_proxies: tuple[str, ...] = ()
    # Variables read from the environment, kept for `portal check` to report (never secrets).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key_service(self) -> KeyServiceAddress:
        return self.kms or KeyServiceAddress("file", folder=self.key_dir)

    @property
    def uses_tls(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def is_embedded(self) -> bool:
        """True when running on the single-machine defaults (SQLite, a local folder)."""
        return self.database_url.startswith("sqlite") or self.storage.kind == "file"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        sources = {k: v for k, v in env.items() if k.startswith("PORTAL_")}
        home = Path(env.get("PORTAL_HOME") or "./var").expanduser().absolute()
        database_url = _database_url(env.get("PORTAL_DATABASE_URL"), home)
        if env.get("PORTAL_DATABASE_PASSWORD_FILE"):
            database_url = _with_password(database_url, env["PORTAL_DATABASE_PASSWORD_FILE"])
        storage = _storage(env.get("PORTAL_STORAGE"), home)
        endpoint = env.get("PORTAL_S3_ENDPOINT_URL") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise _bad("PORTAL_S3_ENDPOINT_URL", endpoint, "an http:// or https:// URL")
        key_dir = Path(env.get("PORTAL_KEY_DIR") or home / "keys").expanduser().absolute()
        kms = None
        if env.get("PORTAL_KMS"):
            try:
                kms = parse_key_service_address(env["PORTAL_KMS"])
            except InvalidInput:
                raise _bad(
                    "PORTAL_KMS",
                    _without_pin(env["PORTAL_KMS"]),
                    "file:///FOLDER or pkcs11:token=NAME?module-path=/PATH&pin-source=/FILE",
                ) from None
        clamd = _clamd(env.get("PORTAL_CLAMD") or DEBIAN_CLAMD_SOCKET)
        max_upload = _positive_int("PORTAL_MAX_UPLOAD_BYTES", env.get("PORTAL_MAX_UPLOAD_BYTES"))
        public_url = env.get("PORTAL_PUBLIC_URL") or "http://127.0.0.1:8000"
        if urlsplit(public_url).scheme not in ("http", "https") or not urlsplit(public_url).netloc:
            raise _bad("PORTAL_PUBLIC_URL", public_url, "an absolute http:// or https:// URL")
        log_level = (env.get("PORTAL_LOG_LEVEL") or "info").lower()
        if log_level not in ("debug", "info", "warning", "error"):
            raise _bad("PORTAL_LOG_LEVEL", log_level, "one of debug, info, warning, error")
        smtp = _smtp(env.get("PORTAL_SMTP_URL") or None)
        notice_from = env.get("PORTAL_NOTICE_FROM") or "portal@" + (
            urlsplit(public_url).hostname or "localhost"
        )
        if not _MAIL_ADDRESS.fullmatch(notice_from):
            raise _bad(
                "PORTAL_NOTICE_FROM", notice_from, "an e-mail address such as portal@example.org"
            )
        return cls(
            home=home,
            database_url=database_url,
            storage=storage,
            s3_endpoint_url=endpoint,
            key_dir=key_dir,
            clamd=clamd,
            max_upload_bytes=max_upload or DEFAULT_MAX_UPLOAD_BYTES,
            public_url=public_url.rstrip("/"),
            log_level=log_level,
            smtp=smtp,
            notice_from=notice_from,
            kms=kms,
            audit_retention_days=_positive_int(
                "PORTAL_AUDIT_RETENTION_DAYS", env.get("PORTAL_AUDIT_RETENTION_DAYS")
            )
            or 2192,
            audit_witness=_witness(env.get("PORTAL_AUDIT_WITNESS"), home),
            alert_thresholds=AlertThresholds(
                **{
                    name: value
                    for name in ("bulk_downloads", "bulk_documents", "failed_sign_ins", "refusals")
                    if (
                        value := _positive_int(
                            f"PORTAL_ALERT_{name.upper()}", env.get(f"PORTAL_ALERT_{name.upper()}")
                        )
                    )
                }
            ),
            operator=(env.get("PORTAL_OPERATOR") or "").strip() or None,
            trusted_proxies=_networks(
                "PORTAL_TRUSTED_PROXIES", env.get("PORTAL_TRUSTED_PROXIES") or ""
            ),
            sources={k: _without_pin(v) if k == "PORTAL_KMS" else v for k, v in sources.items()},
        )


def _without_pin(value: str) -> str:
    """A PKCS#11 URI as it may be shown: a pin-value is a secret."""
    return re.sub(r"(pin-value=)[^;&?]*", r"\1…", value, flags=re.IGNORECASE)


def _bad(name: str, value: str, accepted: str) -> SettingsError:
    return SettingsError(f"{name} has value {value!r}. Expected {accepted}.")


def _database_url(value: str | None, home: Path) -> str:
    if not value:
        return f"sqlite:///{home / 'portal.db'}"
    scheme = urlsplit(value).scheme
    if scheme == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2; the portal ships psycopg 3.
        return "postgresql+psycopg" + value[len("postgresql") :]
    if scheme in ("sqlite", "postgresql+psycopg"):
        return value
    raise _bad(
        "PORTAL_DATABASE_URL", value, "a sqlite:///PATH or postgresql://USER@HOST:PORT/DB URL"
    )


def _with_password(url: str, password_file: str) -> str:
    """The database password from a file (a container secret), never from the environment."""
    name = "PORTAL_DATABASE_PASSWORD_FILE"
    if not url.startswith("postgresql"):
        raise _bad(name, password_file, "to be set only with a postgresql:// PORTAL_DATABASE_URL")
    try:
        password = Path(password_file).read_text().rstrip("\r\n")
    except OSError as exc:
        raise _bad(name, password_file, f"a readable file ({exc.strerror})") from None
    parts = urlsplit(url)
    if not password or not parts.username or parts.password is not None:
        raise _bad(name, password_file, "a non-empty file, with a user and no password in the URL")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(parts.username, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _storage(value: str | None, home: Path) -> StorageLocation:
    if not value:
        return StorageLocation(kind="file", path=home / "blobs")
    parts = urlsplit(value)
    if parts.scheme == "file" and parts.path:
        return StorageLocation(kind="file", path=Path(parts.path).absolute())
    if parts.scheme == "s3" and parts.netloc:
        return StorageLocation(kind="s3", bucket=parts.netloc, prefix=parts.path.strip("/"))
    raise _bad("PORTAL_STORAGE", value, "file:///ABSOLUTE/PATH or s3://BUCKET[/PREFIX]")


def _witness(value: str | None, home: Path) -> StorageLocation:
    if not value:
        return StorageLocation(kind="file", path=home / "witness" / "audit.jsonl")
    parts = urlsplit(value)
    if parts.scheme == "file" and parts.path and not parts.path.endswith("/"):
        return StorageLocation(kind="file", path=Path(parts.path).absolute())
    if parts.scheme == "s3" and parts.netloc and parts.path.strip("/"):
        return StorageLocation(kind="s3", bucket=parts.netloc, prefix=parts.path.strip("/"))
    raise _bad("PORTAL_AUDIT_WITNESS", value, "file:///ABSOLUTE/PATH/FILE or s3://BUCKET/PREFIX")


def _clamd(value: str) -> ClamdAddress:
    parts = urlsplit(value)
    if parts.scheme == "unix" and parts.path:
        return ClamdAddress(kind="unix", path=parts.path)
    if parts.scheme == "tcp" and parts.hostname:
        try:
            port = parts.port
        except ValueError:
            port = None
        if port:
            return ClamdAddress(kind="tcp", host=parts.hostname, port=port)
    raise _bad("PORTAL_CLAMD", value, "unix:///PATH/TO/SOCKET or tcp://HOST:PORT")


_MAIL_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}")


def _smtp(value: str | None) -> SmtpAddress | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.username or parts.password:
        # Never echo it: the value holds a credential. The relay is trusted by address instead.
        raise SettingsError(
            "PORTAL_SMTP_URL holds a user name or password. Expected smtp://HOST[:PORT] of a "
            "relay that accepts the portal's mail without credentials."
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme in ("smtp", "smtps") and parts.hostname:
        default = 465 if parts.scheme == "smtps" else 25
        return SmtpAddress(host=parts.hostname, port=port or default, tls=parts.scheme == "smtps")
    raise _bad("PORTAL_SMTP_URL", value, "smtp://HOST[:PORT] or smtps://HOST[:PORT]")


def _networks(name: str, value: str) -> tuple[str, ...]:
    """Addresses and CIDR networks, separated by commas or spaces, each in its canonical form."""
    found = []
    for item in re.split(r"[,\s]+", value.strip()):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise _bad(
                name, value, "addresses or CIDR networks separated by commas, e.g. 127.0.0.1,::1"
            ) from None
        found.append(str(network.network_address if network.num_addresses == 1 else network))
    return tuple(found)


def _positive_int(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        number = 0
    if number <= 0:
        raise _bad(name, value, "a positive whole number (e.g. 2147483648 for bytes, 90 for days)")
    return number

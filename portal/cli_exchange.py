"""``portal review``, ``portal request`` and ``portal download``.

``review`` and ``request`` are operator commands: they open the database and the key store with the
settings and are audited with the role ``cli``, like ``portal user``. ``download`` is a client of the
JSON API: it needs only a URL and a personal access token, and never touches the database or keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

import click

from portal.cli import CheckFailure, CliContext, UsageFailure, pass_cli

if TYPE_CHECKING:
    import requests
    from sqlmodel import Session

    from portal.auditing import Auditor
    from portal.exchange.acting import Acting

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _day(value: datetime) -> date:
    return value.date()


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


@contextmanager
def _exchange(cli: CliContext) -> Iterator[tuple[Session, Auditor, Acting]]:
    """A database session, the auditor and the operator acting now; service errors exit 2."""
    from sqlmodel import Session

    import audit
    from portal.auditing import SIGNING_KEY_FILE, Auditor
    from portal.db import make_engine
    from portal.exchange.acting import Acting
    from portal.exchange.errors import ExchangeError

    settings = cli.settings
    try:
        auditor = Auditor(
            audit.AuditLog(audit.load_signing_key(settings.key_dir / SIGNING_KEY_FILE))
        )
    except audit.AuditError as exc:
        raise UsageFailure(f"{exc} Run 'portal init' first.") from None
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            try:
                yield db, auditor, Acting.operator(datetime.now(UTC))
            except ExchangeError as problem:
                db.rollback()
                raise UsageFailure(problem.message) from None
    finally:
        engine.dispose()


# --- portal review ----------------------------------------------------------------------------


@click.group()
def review() -> None:
    """Reviews: create, open, close, list."""


@review.command("create")
@click.argument("code")
@click.option("--title", required=True, help="What the review is about.")
@click.option("--legal-basis", required=True, help="The law that allows it to ask for records.")
@click.option("--lead", "lead_email", required=True, help="The lead's email (role lead).")
@click.option(
    "--org", "org_codes", multiple=True, required=True, help="A participating authority (repeat)."
)
@click.option("--member", "member_emails", multiple=True, help="An inspector on the team (repeat).")
@click.option("--opens", required=True, type=DATE, help="First day of uploads (YYYY-MM-DD).")
@click.option("--closes", required=True, type=DATE, help="Last day of uploads (YYYY-MM-DD).")
@click.option(
    "--retention-days", required=True, type=int, help="Days the records are kept after closing."
)
@click.option("--open", "open_now", is_flag=True, help="Open the review for uploads at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the review as JSON.")
@pass_cli
def review_create(
    cli: CliContext,
    code: str,
    title: str,
    legal_basis: str,
    lead_email: str,
    org_codes: tuple[str, ...],
    member_emails: tuple[str, ...],
    opens: datetime,
    closes: datetime,
    retention_days: int,
    open_now: bool,
    as_json: bool,
) -> None:
    """Create review CODE (e.g. SWG24) as a draft, with its key, organisations and team."""
    from portal.blobs import open_vault
    from portal.exchange import reviews
    from portal.exchange.serialize import review_json

    plan = reviews.ReviewPlan(
        code=code,
        title=title,
        legal_basis=legal_basis,
        opens_on=_day(opens),
        closes_on=_day(closes),
        retention_days=retention_days,
    )
    with _exchange(cli) as (db, auditor, acting):
        # Every name is looked up before anything is created, so a typo creates nothing.
        reviews.check_plan(plan)
        lead = reviews.user_by_email(db, lead_email)
        organisations = [reviews.organisation_by_code(db, c) for c in dict.fromkeys(org_codes)]
        members = [reviews.user_by_email(db, e) for e in dict.fromkeys(member_emails)]
        key_wanted: list[str] = []
        created = reviews.create_review(
            db, auditor, acting, plan, lead=lead, create_key=key_wanted.append
        )
        for organisation in organisations:
            reviews.add_organisation(db, auditor, acting, created, organisation)
        for member in members:
            reviews.add_member(db, auditor, acting, created, member)
        if open_now:
            reviews.open_review(db, auditor, acting, created)
        # The key is made once every step has passed, just before the commit, so a refused
        # organisation or member leaves no key behind (creating it is idempotent if a retry follows).
        for review_code in key_wanted:
            open_vault(cli.settings).create_review_key(review_code)
        db.commit()
        body = review_json(created)
        body["organisations"] = [o.slug for o in organisations]
        _emit(
            as_json,
            body,
            f"Created review {created.code} ({created.state.value}): "
            f"{len(organisations)} organisation(s), {1 + len(members)} on the team.\n"
            f"Uploads {created.opens_on:%d %B %Y} to {created.closes_on:%d %B %Y}; "
            f"records destroyed on {created.destroy_on:%d %B %Y}."
            + (
                "" if open_now else f"\nOpen it for uploads with: portal review open {created.code}"
            ),
        )


def _change_state(cli: CliContext, code: str, as_json: bool, *, close: bool) -> None:
    from portal.exchange import reviews
    from portal.exchange.serialize import review_json

    with _exchange(cli) as (db, auditor, acting):
        found = reviews.managed_review(db, acting, code)
        if close:
            reviews.close_review(db, auditor, acting, found)
            text = (
                f"Review {found.code} is closed (closing date {found.closes_on:%d %B %Y}); "
                f"its records will be destroyed on {found.destroy_on:%d %B %Y}."
            )
        else:
            reviews.open_review(db, auditor, acting, found)
            text = f"Review {found.code} is open for uploads until {found.closes_on:%d %B %Y}."
        db.commit()
        _emit(as_json, review_json(found), text)


@review.command("open")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def review_open(cli: CliContext, code: str, as_json: bool) -> None:
    """Open a draft review for uploads."""
    _change_state(cli, code, as_json, close=False)


@review.command("close")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def review_close(cli: CliContext, code: str, as_json: bool) -> None:
    """Close a review now: no more uploads; closing early brings its destruction date forward."""
    _change_state(cli, code, as_json, close=True)


@review.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def review_list(cli: CliContext, as_json: bool) -> None:
    """Every review, newest opening date first."""
    from portal.exchange import reviews
    from portal.exchange.serialize import review_json

    with _exchange(cli) as (db, _, acting):
        found = reviews.list_reviews(db, acting)
        if as_json:
            click.echo(json.dumps({"items": [review_json(r) for r in found]}, indent=2))
            return
        if not found:
            click.echo("No reviews yet. Create one with: portal review create CODE ...")
            return
        click.echo(f"{'CODE':<16} {'STATE':<9} {'OPENS':<10} {'CLOSES':<10} {'DESTROY':<10} TITLE")
        for r in found:
            click.echo(
                f"{r.code:<16} {r.state.value:<9} {r.opens_on} {r.closes_on} {r.destroy_on} "
                f"{r.title}"
            )


# --- portal request ---------------------------------------------------------------------------


@click.group("request")
def request_group() -> None:
    """Requests for records from one organisation."""


@request_group.command("create")
@click.argument("code")
@click.option("--org", "org_code", required=True, help="The authority asked.")
@click.option("--title", required=True, help="What is asked for.")
@click.option("--instructions", default="", help="What to send and how.")
@click.option("--due", required=True, type=DATE, help="Due date (YYYY-MM-DD).")
@click.option("--expected", default=0, show_default=True, type=int, help="Items expected.")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def request_create(
    cli: CliContext,
    code: str,
    org_code: str,
    title: str,
    instructions: str,
    due: datetime,
    expected: int,
    as_json: bool,
) -> None:
    """Ask an organisation taking part in review CODE for records; prints the request's number."""
    from portal.exchange import reviews
    from portal.exchange.serialize import request_json

    with _exchange(cli) as (db, auditor, acting):
        found = reviews.managed_review(db, acting, code)
        created = reviews.create_request(
            db,
            auditor,
            acting,
            found,
            organisation=reviews.organisation_by_code(db, org_code),
            title=title,
            instructions=instructions,
            due_on=_day(due),
            expected_items=expected,
        )
        db.commit()
        _emit(
            as_json,
            request_json(db, created),
            f"Request {created.id} in {found.code} to {org_code.strip().lower()}, "
            f"due {created.due_on:%d %B %Y}.",
        )


# --- portal download --------------------------------------------------------------------------

CHUNK = 1024 * 1024
MAX_NAME_BYTES = 200  # well under the 255 bytes most file systems allow for one name
_REPR_DIGEST = re.compile(r"(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):")


@dataclass(frozen=True)
class Announced:
    """What the server says it is sending, checked against what arrives."""

    size: int
    sha256: bytes
    filename: str | None


def local_file_name(server_name: str | None, reference: str) -> str:
    """A name to save as in the current folder: never a path, never hidden, never ``..``.

    Threat: a hostile or compromised server answering ``../../.bashrc`` or ``/etc/cron.d/x`` must not
    choose where the file lands: only the last component is kept, control characters go, leading
    dots go, and anything left empty falls back to the reference.
    """
    name = unicodedata.normalize("NFC", server_name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    name = name.rstrip(". ")
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    extension = extension[:16]
    while stem and len(f"{stem}{dot}{extension}".encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    name = f"{stem}{dot}{extension}" if stem else ""
    if not name or name in (".", ".."):
        return re.sub(r"[^A-Za-z0-9-]", "", reference)[:40] or "document"
    return name


def _server_file_name(disposition: str) -> str | None:
    """``filename*`` (RFC 8187) if the server sent one, else the plain ``filename`` fallback."""
    if not disposition or len(disposition) > 4000:
        return None
    message = Message()
    try:
        message["content-disposition"] = disposition
        params = message.get_params(header="content-disposition", failobj=[])
    except (ValueError, TypeError, IndexError):
        return None
    plain = None
    for key, value in params[1:]:
        if key.lower() != "filename":
            continue
        if isinstance(value, tuple):
            return collapse_rfc2231_value(value)
        plain = plain or value
    return plain


def _announced(response: requests.Response) -> Announced:
    length = response.headers.get("content-length", "")
    if not length.isdigit():
        raise CheckFailure("The server did not say how large the document is; nothing was saved.")
    found = _REPR_DIGEST.search(response.headers.get("repr-digest", ""))
    digest = b""
    if found:
        with contextlib.suppress(ValueError):
            import base64

            digest = base64.b64decode(found.group(1), validate=True)
    if len(digest) != hashlib.sha256().digest_size:
        raise CheckFailure(
            "The server sent no SHA-256 Repr-Digest for the document, so it cannot be checked; "
            "nothing was saved."
        )
    name = _server_file_name(response.headers.get("content-disposition", ""))
    return Announced(size=int(length), sha256=digest, filename=name)


def _error_message(response: requests.Response) -> str:
    try:
        message = response.json()["error"]["message"]
        if isinstance(message, str):
            return message
    except Exception:  # noqa: S110 (any non-JSON answer gets the generic message below)
        pass
    return f"The server answered {response.status_code} {response.reason}."


def _fail_for(response: requests.Response) -> click.ClickException:
    message = _error_message(response)
    if response.status_code in (400, 401, 403):
        # A mistyped reference or a bad token: the user has to change what they typed.
        return UsageFailure(message)
    return CheckFailure(message)


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            raw = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageFailure(f"Cannot read the token file {token_file}: {exc}") from None
        if token_file.stat().st_mode & 0o077:
            click.secho(
                f"WARNING: {token_file} can be read by other users; chmod 600 it.",
                fg="yellow",
                err=True,
            )
    else:
        raw = os.environ.get("PORTAL_TOKEN", "").strip()
    if not raw:
        raise UsageFailure("Give a token: --token-file FILE, or set PORTAL_TOKEN.")
    if any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise UsageFailure("The token has spaces or control characters in it: check the file.")
    return raw


def _bearer_auth(token: str) -> Any:
    """The token as requests' auth (given explicitly, so that ~/.netrc can never replace it)."""
    import requests

    class Bearer(requests.auth.AuthBase):
        def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
            prepared.headers["Authorization"] = f"Bearer {token}"
            return prepared

    return Bearer()


def _target(output: Path | None, announced: Announced, reference: str) -> Path:
    if output is None:
        return Path.cwd() / local_file_name(announced.filename, reference)
    if output.is_dir():
        return output / local_file_name(announced.filename, reference)
    return output


def _receive(
    response: requests.Response, sink: BinaryIO, announced: Announced
) -> tuple[int, bytes]:
    """Copy the body to ``sink`` while hashing it; stop as soon as it is longer than announced."""
    from tqdm import tqdm

    digest, size = hashlib.sha256(), 0
    with tqdm(
        total=announced.size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="Downloading",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
    ) as bar:
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > announced.size:
                break
            digest.update(chunk)
            sink.write(chunk)
            bar.update(len(chunk))
    return size, digest.digest()


def _place(temporary: Path, target: Path, *, force: bool) -> None:
    if force:
        os.replace(temporary, target)
        return
    try:
        # link() fails if the target exists: no window in which another file could be clobbered.
        os.link(temporary, target)
    except FileExistsError:
        raise UsageFailure(f"{target} exists; nothing was overwritten (use --force).") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise UsageFailure(f"{target} exists; nothing was overwritten (use --force).") from None
        os.replace(temporary, target)
    else:
        temporary.unlink()


@click.command()
@click.argument("reference")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=True),
    help="File or folder to save to (default: the document's name, in this folder).",
)
@click.option("--url", envvar="PORTAL_URL", help="The portal (default PORTAL_PUBLIC_URL).")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding an API token (default: the PORTAL_TOKEN variable).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--json", "as_json", is_flag=True, help="Print where it was saved as JSON.")
@pass_cli
def download(
    cli: CliContext,
    reference: str,
    output: Path | None,
    url: str | None,
    token_file: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Download document REFERENCE, checked against its SHA-256 before it is saved.

    The bytes go to a private temporary file next to the target, which is renamed into place only
    when the size and the SHA-256 match what the portal recorded at upload. Exit 1 if they do not
    (nothing is saved) or the document is not there; 2 for a mistyped reference or a bad token.
    """
    import requests

    token = _token(token_file)
    base = (url or cli.settings.public_url).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise UsageFailure(f"--url {base!r} is not an http:// or https:// URL.")
    if output is not None and not output.is_dir() and output.exists() and not force:
        raise UsageFailure(f"{output} exists; nothing was overwritten (use --force).")
    # quote() with safe="" so that a "reference" with slashes cannot reach another route.
    path = f"/api/v1/documents/{quote(reference.strip(), safe='')}/content"
    headers = {"Accept-Encoding": "identity"}
    try:
        with (
            requests.Session() as client,
            client.get(
                base + path,
                auth=_bearer_auth(token),
                headers=headers,
                stream=True,
                timeout=(30, 300),
            ) as response,
        ):
            if response.status_code != 200:
                raise _fail_for(response)
            announced = _announced(response)
            target = _target(output, announced, reference)
            if target.exists() and not force:
                raise UsageFailure(f"{target} exists; nothing was overwritten (use --force).")
            saved = _save(response, announced, target, force=force)
    except requests.RequestException as exc:
        raise CheckFailure(f"The download from {base} failed: {exc}. Nothing was saved.") from None
    _emit(
        as_json,
        {
            "reference": reference.strip(),
            "path": str(saved),
            "size": announced.size,
            "sha256": announced.sha256.hex(),
        },
        f"Saved {saved} ({announced.size:,} bytes, SHA-256 {announced.sha256.hex()} checked).",
    )


def _save(response: requests.Response, announced: Announced, target: Path, *, force: bool) -> Path:
    # mkstemp creates the file 0600: a record is never readable by other users, even half-written.
    handle, name = tempfile.mkstemp(prefix=".portal-download-", suffix=".part", dir=target.parent)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as sink:
            size, sha256 = _receive(response, sink, announced)
            sink.flush()
            os.fsync(sink.fileno())
        if size != announced.size:
            raise CheckFailure(
                f"Received {size:,} bytes, but the portal announced {announced.size:,}: the "
                "transfer was cut or altered. Nothing was saved; try again."
            )
        if not hmac.compare_digest(sha256, announced.sha256):
            raise CheckFailure(
                "The SHA-256 of the bytes received does not match the one the portal recorded at "
                "upload: the transfer was altered. Nothing was saved; try again, and tell the "
                "portal's administrator if it happens again."
            )
        _place(temporary, target, force=force)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target

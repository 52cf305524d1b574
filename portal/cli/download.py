"""``portal download REF``: a client of the JSON API that saves a document only once it is checked.

It needs a URL and a personal access token, and never touches the database or the keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

import click

from portal.cli.client import address_origin, api_base_url, network_reason, read_token
from portal.cli.context import CheckFailure, CliContext, UsageFailure, pass_cli
from portal.text import is_whole_number

if TYPE_CHECKING:
    import requests


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


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
    media_type: str


def local_file_name(server_name: str | None, reference: str, media_type: str | None) -> str:
    """A name to save as in the current folder: never a path, never hidden, never ``..``, and its
    extension that of the media type the server sent (``.bin`` for one that is not accepted).

    Threat: a hostile or compromised server answering ``../../.bashrc`` or ``/etc/cron.d/x`` must not
    choose where the file lands: only the last component is kept, control characters go, leading
    dots go, and anything left empty falls back to the reference. Nor may it (or the sender behind
    it) choose the extension: text announced as ``run-me.bat`` is saved as ``run-me.txt`` (issue 18),
    the rule the portal applies to its own names (:func:`portal.filetypes.download_name`).
    """
    from portal.filetypes.names import base_name, extension_for

    extension = extension_for(media_type)
    stem = base_name(server_name)
    while stem and len(f"{stem}{extension}".encode()) > MAX_NAME_BYTES:
        stem = stem[:-1].rstrip(" .")
    if not stem:
        stem = re.sub(r"[^A-Za-z0-9-]", "", reference)[:40] or "document"
    return stem + extension


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
    if not is_whole_number(length):
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
    media_type = response.headers.get("content-type", "")
    return Announced(size=int(length), sha256=digest, filename=name, media_type=media_type)


def _server_error(response: requests.Response) -> tuple[str, str]:
    """The answer's ``{"error": {"code", "message"}}``, or ("", "") if it has none."""
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
        if isinstance(code, str) and isinstance(message, str):
            return code[:60], message[:1000]
    except Exception:  # noqa: S110 (any non-JSON answer gets the generic message below)
        pass
    return "", ""


# The command's own words for "not there": the same whichever layer refused (the route's rule or
# the policy, whose messages are written for web pages), and for a reference that does not exist.
NOT_FOUND = (
    "There is nothing with that reference that you can see. Check the reference, or ask the "
    "person who gave it to you. Nothing was saved."
)
# Answers the user can only fix by typing something else: exit 2.
_USAGE_CODES = frozenset({"invalid_reference"})


def _fail_for(response: requests.Response, base: str) -> click.ClickException:
    code, message = _server_error(response)
    status = response.status_code
    if status == 404:
        return CheckFailure(NOT_FOUND)
    if status >= 500:
        return CheckFailure(
            f"The portal at {base} failed ({status} {message or response.reason}). Nothing was "
            "saved; try again later."
        )
    message = message or f"The portal answered {status} {response.reason}."
    if status in (401, 403) or code in _USAGE_CODES:
        # A mistyped reference or a bad token: the user has to change what they typed.
        return UsageFailure(message)
    # Not scanned yet, rejected by the scan (with its finding), withdrawn, destroyed: the
    # server's message says which, in words that suit a command line.
    return CheckFailure(f"{message} Nothing was saved.")


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
        return Path.cwd() / local_file_name(announced.filename, reference, announced.media_type)
    if output.is_dir():
        return output / local_file_name(announced.filename, reference, announced.media_type)
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
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        # Renaming over a device or a pipe would replace it (as root, /dev/null itself).
        raise UsageFailure(f"{target} is not a regular file; nothing was written to it.")
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
    (nothing is saved), or the document is not there, not scanned yet, rejected by the scan or
    withdrawn (the message says which); 2 for a mistyped reference or a bad token.
    """
    import requests

    token = read_token(token_file)
    base = api_base_url(cli, url)
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
                raise _fail_for(response, base)
            announced = _announced(response)
            target = _target(output, announced, reference)
            if target.exists() and not force:
                raise UsageFailure(f"{target} exists; nothing was overwritten (use --force).")
            saved = _save(response, announced, target, force=force)
    except requests.RequestException as exc:
        raise CheckFailure(
            f"The download from {base} failed (the address is {address_origin(url)}): "
            f"{network_reason(exc)}. Nothing was saved; try again."
        ) from None
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

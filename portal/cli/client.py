"""What the API client commands (``portal upload``, ``portal download``) share: where, and as whom."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from portal.cli.context import CliContext, UsageFailure


def read_token(token_file: Path | None) -> str:
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


def api_base_url(cli: CliContext, url: str | None) -> str:
    """``--url`` / ``PORTAL_URL``, else the portal's public URL from the settings."""
    base = (url or cli.settings.public_url).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise UsageFailure(f"--url has value {base!r}. Expected an http:// or https:// URL.")
    return base


def address_origin(url: str | None) -> str:
    """Where the address came from, for a message that says it could not be reached."""
    if url:
        return "given by --url or PORTAL_URL"
    if os.environ.get("PORTAL_PUBLIC_URL"):
        return "PORTAL_PUBLIC_URL's; give --url or set PORTAL_URL for another"
    return "the default: none of --url, PORTAL_URL or PORTAL_PUBLIC_URL is set"


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def network_reason(failure: BaseException | str) -> str:
    """What the network said, in a few words: requests' errors nest the useful part deep inside."""
    text = str(failure)
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip().rstrip(".")
    if "timed out" in text.lower():
        return "no answer in time"
    return text[:300] or "no answer"


def unreachable(base_url: str, url: str | None, failure: BaseException | str) -> str:
    """The portal could not be reached: which address was tried, where it came from, and why."""
    return (
        f"cannot reach the portal at {base_url} (the address is {address_origin(url)}): "
        f"{network_reason(failure)}"
    )

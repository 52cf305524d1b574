"""What the API client commands (``portal upload``, ``portal download``) share: where, and as whom."""

from __future__ import annotations

import os
from pathlib import Path

import click

from portal.cli import CliContext, UsageFailure


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

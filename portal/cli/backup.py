"""``portal backup FOLDER`` and ``portal restore FOLDER``: the database and the blobs of this
installation, never its key service (see portal/backup and docs/operations.md).

Exit status: 0 done; 1 the backup does not verify, or a tool or store failed; 2 refused (a folder
that is not empty, a target database or blob store that holds anything, the wrong key service).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from portal.backup import BackupError, BackupRefused, make_backup, restore_backup
from portal.cli.context import CheckFailure, CliContext, UsageFailure, pass_cli


@click.command()
@click.argument("output_folder", type=click.Path(file_okay=False, path_type=Path))
@pass_cli
def backup(cli: CliContext, output_folder: Path) -> None:
    """Back up the database and every blob into OUTPUT_FOLDER (new or empty); no keys."""
    try:
        make_backup(cli.settings, output_folder, now=datetime.now(UTC), report=click.echo)
    except BackupRefused as refused:
        raise UsageFailure(str(refused)) from None
    except BackupError as failed:
        raise CheckFailure(str(failed)) from None


@click.command()
@click.argument("input_folder", type=click.Path(file_okay=False, path_type=Path))
@pass_cli
def restore(cli: CliContext, input_folder: Path) -> None:
    """Restore the backup in INPUT_FOLDER into this new, empty installation."""
    try:
        restore_backup(cli.settings, input_folder, report=click.echo)
    except BackupRefused as refused:
        raise UsageFailure(str(refused)) from None
    except BackupError as failed:
        raise CheckFailure(str(failed)) from None

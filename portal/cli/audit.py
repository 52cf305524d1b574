"""``portal audit``: verify the audit log (in the database or an export, offline) and export it.

Verification and export are audited themselves (SPEC §5), as the person ``--by EMAIL`` (or
``PORTAL_OPERATOR``) names: a DPO (verification: a DPO or an administrator). Exit status: 0 verified,
1 broken (the first broken sequence number and the kind of break are printed), 2 bad input (a
usage error, a file that is not an export, a receipt or a key).

An export carries the witness's latest checkpoint (its own, signed line) and the log's public
keys; ``verify --export FILE [--witness RECEIPT]`` checks it offline, with no database and no
portal: the chain, the signatures, and that the export reaches and agrees with the receipt.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import click
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from audit import (
    FORMATS,
    Actor,
    AuditEvent,
    AuditLog,
    ChainBroken,
    CheckpointRow,
    EventFilter,
    ExportUnreadable,
    FileWitness,
    Outcome,
    SigningKey,
    SigningKeyError,
    Target,
    Verification,
    WitnessError,
    check_against_witness,
    checkpoint_line,
    load_public_key,
    parse_receipts,
    parts_by_default,
    to_us,
    verify_export,
    verify_log,
    witness_checkpoints,
)
from portal.accounts.models import Role
from portal.audit_vocabulary import VOCABULARY, Action, TargetKind
from portal.blobs import open_witness
from portal.cli.context import (
    CheckFailure,
    CliContext,
    UsageFailure,
    by_option,
    operator_for,
    pass_cli,
)
from portal.settings import Settings

DPO = frozenset({Role.dpo})
CHECKERS = frozenset({Role.dpo, Role.admin})
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]


def signing_key(settings: Settings) -> SigningKey:
    """The installation's signing key, from the key service (``portal init`` creates it)."""
    from portal import keys
    from storage import StorageError

    try:
        return keys.signing_key(keys.checked_keys(settings))
    except (SigningKeyError, StorageError) as exc:
        raise UsageFailure(f"{exc} Run `portal init` first.") from exc


def _engine(settings: Settings) -> Engine:
    from portal.db import make_engine

    return make_engine(settings.database_url)


def _person(cli: CliContext, engine: Engine, by: str | None, allowed: frozenset[Role]) -> Actor:
    """The named person the events record (a usage error, exit 2, if there is none)."""
    from sqlmodel import Session

    with Session(engine) as db:
        return operator_for(cli, db, by, allowed=allowed).actor


def _snapshot(engine: Engine) -> Connection:
    # One snapshot for the whole read, so that appends made meanwhile are not seen half-way.
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="REPEATABLE READ")
    return engine.connect()


@click.group()
def audit() -> None:
    """Verify and export the tamper-evident audit log."""


@audit.command()
@click.option(
    "--export",
    "export_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify this export file offline instead of the database.",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The portal's audit public key (PEM), with --export. Default: the keys the export "
    "carries (then only a receipt from the portal vouches for them).",
)
@click.option("--from", "first", type=click.IntRange(min=1), help="First sequence number.")
@click.option("--to", "last", type=click.IntRange(min=1), help="Last sequence number.")
@click.option(
    "--processes",
    type=click.IntRange(min=1, max=64),
    default=parts_by_default,
    show_default="the number of CPUs, at most 8",
    help="Walk a long log (PostgreSQL) in this many parts at once, cut at signed checkpoints.",
)
@click.option(
    "--witness",
    "receipt",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also compare with this witness file or receipt (a line a verification printed); "
    "with --export too.",
)
@by_option
@pass_cli
def verify(
    cli: CliContext,
    by: str | None,
    export_file: Path | None,
    public_key: Path | None,
    first: int | None,
    last: int | None,
    processes: int,
    receipt: Path | None,
) -> None:
    """Verify the hash chain, its signed checkpoints, and the witness outside the database."""
    kept = _read_receipt(receipt) if receipt is not None else None
    if export_file is not None or public_key is not None:
        if export_file is None:
            raise UsageFailure("--public-key goes with --export: give the export file too.")
        if first is not None or last is not None:
            raise UsageFailure("--from and --to apply to the database, not to an export.")
        _verify_offline(export_file, public_key, receipt, kept)
        return
    if first is not None and last is not None and first > last:
        raise UsageFailure(f"--from {first} is after --to {last}.")
    settings = cli.settings
    log = AuditLog(VOCABULARY, signing_key(settings))
    engine = _engine(settings)
    try:
        actor = _person(cli, engine, by, CHECKERS)
        # Chain what recent actions committed, so that the verification covers them; a broken
        # chain is left for the verification below to find and name.
        with contextlib.suppress(ChainBroken):
            log.chain_committed(engine)
        witness = open_witness(settings)
        whole = first is None and last is None
        try:
            if whole:
                # Bring the witness up to date first, so the receipt printed below is current;
                # a database that contradicts it is left for the verification to name.
                with contextlib.suppress(ChainBroken), engine.connect() as connection:
                    witness_checkpoints(connection, witness, log.public_keys)
            with _snapshot(engine) as connection, connection.begin():
                result = verify_log(
                    connection,
                    [log.public_key],
                    first=first,
                    last=last,
                    every_events=log.policy.every_events,
                    processes=processes,
                    witness=witness if whole else None,
                )
                if result.ok and receipt is not None:
                    broken = check_against_witness(
                        connection,
                        FileWitness(receipt),
                        log.public_keys,
                        disposed_through=result.epoch_seq,
                    )
                    if broken is not None:
                        result = result.with_break(broken)
        except WitnessError as exc:
            raise CheckFailure(f"the audit log was not verified: {exc}") from None
        details: dict[str, int | bool | str] = {
            "first_sequence": result.first_seq,
            "last_sequence": result.last_seq,
            "events": result.events,
        }
        if result.broken is not None:
            details.update(
                broken_sequence=result.broken.sequence, broken_kind=result.broken.kind.value
            )
        _record(engine, log, actor, Action.AUDIT_VERIFIED, result.ok, details)
    finally:
        engine.dispose()
    _report(result, "the audit log")
    now_us = to_us(log.now())
    if result.tail_events:
        age = result.tail_age_seconds(now_us) or 0.0
        click.echo(
            f"unsigned tail: {result.tail_events} events after the last signed checkpoint, "
            f"the oldest {age:.0f} s old"
        )
        if result.tail_is_stale(now_us, log.policy.every_seconds):
            click.echo(
                f"FINDING: the unsigned tail is older than {2 * log.policy.every_seconds} s: "
                "nothing is signing checkpoints (is `portal worker` running?)"
            )
    if result.witnessed is not None:
        click.echo(f"witnessed up to {result.witnessed.seq} by {witness.name}")
        click.echo(
            "receipt (keep it; `portal audit verify [--export FILE] --witness RECEIPT` checks "
            "the log, or an export offline, against it):"
        )
        click.echo(checkpoint_line(result.witnessed))


@audit.command()
@click.option(
    "--before",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Dispose of events older than this day (UTC). Default: the retention period "
    "(PORTAL_AUDIT_RETENTION_DAYS) before today.",
)
@by_option
@pass_cli
def dispose(cli: CliContext, by: str | None, before: datetime | None) -> None:
    """Dispose of the events past the log's retention period, behind a signed epoch, so that
    the rest still verifies (docs/audit-format.md, "Retention")."""
    from audit import dispose as dispose_events

    settings = cli.settings
    cutoff = (
        before.replace(tzinfo=UTC)
        if before is not None
        else datetime.now(UTC) - timedelta(days=settings.audit_retention_days)
    )
    log = AuditLog(VOCABULARY, signing_key(settings))
    engine = _engine(settings)
    try:
        actor = _person(cli, engine, by, DPO)
        try:
            with engine.begin() as connection:
                done = dispose_events(log, connection, before=cutoff)
        except ChainBroken as refused:
            details = {
                "broken_sequence": refused.broken.sequence,
                "broken_kind": refused.broken.kind.value,
            }
            _record(engine, log, actor, Action.AUDIT_DISPOSED, False, details)
            raise CheckFailure(f"nothing was disposed of: {refused}") from None
        _record(
            engine,
            log,
            actor,
            Action.AUDIT_DISPOSED,
            True,
            {"events": done.events, "last_sequence": done.through_seq},
        )
    finally:
        engine.dispose()
    if done.events == 0:
        click.echo(f"nothing to dispose of: no signed checkpoint before {cutoff:%Y-%m-%d}")
    else:
        click.echo(
            f"disposed of {done.events} audit events older than {cutoff:%Y-%m-%d}; "
            f"the log now starts after {done.through_seq}"
        )


def _read_receipt(receipt: Path) -> list[CheckpointRow]:
    """The checkpoints of a receipt or witness file a DPO kept; a usage error (2) if it is not
    one: a garbled receipt is bad input, not a finding about the log."""
    try:
        return parse_receipts(receipt.read_bytes(), where=str(receipt))
    except WitnessError as exc:
        raise UsageFailure(
            f"{exc}: not a receipt (a line `portal audit verify` printed)."
        ) from None
    except OSError as exc:
        raise UsageFailure(f"cannot read {receipt}: {exc.strerror}") from None


def _verify_offline(
    export_file: Path,
    public_key_file: Path | None,
    receipt: Path | None,
    kept: list[CheckpointRow] | None,
) -> None:
    key = None
    if public_key_file is not None:
        try:
            key = load_public_key(public_key_file)
        except SigningKeyError as exc:
            raise UsageFailure(f"{public_key_file}: {exc}") from exc
    try:
        check = verify_export(
            export_file.read_bytes(),
            key,
            receipts=kept or (),
            receipt_name=f"the receipt {receipt}" if receipt is not None else "the receipt",
        )
    except ExportUnreadable as exc:
        raise UsageFailure(f"{export_file}: {exc}") from exc
    for fingerprint in check.fingerprints:
        source = "carried by the export" if check.keys_from_export else "given"
        click.echo(f"public key {fingerprint} ({source})")
    click.echo(f"{check.shown} events shown, {check.hidden} hidden (digest only)")
    if check.witnessed is not None:
        click.echo(f"the export carries the checkpoint witnessed at {check.witnessed.seq}")
    else:
        click.echo("the export carries no witnessed checkpoint (made without a witness)")
    _report(check.verification, str(export_file))
    if kept:
        click.echo(
            f"agrees with {len(kept)} witnessed checkpoint(s) of {receipt}, the latest at "
            f"{kept[-1].seq}"
        )
    if check.keys_from_export and not kept:
        click.echo(
            "WARNING: checked with the keys the export carries, and no receipt: this proves the "
            "file is whole, not that the portal made it. Compare the fingerprint with the "
            "portal's (`portal audit public-key`), or give --public-key or --witness RECEIPT."
        )


def _report(result: Verification, what: str) -> None:
    if result.broken is not None:
        click.echo(
            f"BROKEN at sequence {result.broken.sequence}: {result.broken.describe()}", err=True
        )
        raise CheckFailure(
            f"{what} does not verify: first broken sequence number {result.broken.sequence} "
            f"({result.broken.kind.value})."
        )
    signed = result.last_checkpoint.seq if result.last_checkpoint is not None else "none"
    click.echo(
        f"verified {what}: events {result.first_seq} to {result.last_seq} "
        f"({result.events} events, {result.checkpoints} signed checkpoints, last signed at "
        f"{signed})"
    )
    if result.parts > 1:
        click.echo(f"walked in {result.parts} parts at once, cut at signed checkpoints")
    if result.pending:
        click.echo(
            f"{result.pending} recent events are stored but not chained yet: `portal worker` "
            "chains them (they are not covered by this verification)"
        )


@audit.command()
@click.option("--format", "format_", type=click.Choice(FORMATS), required=True)
@click.option("--since", type=click.DateTime(DATE_FORMATS), help="From this UTC date/time.")
@click.option("--until", type=click.DateTime(DATE_FORMATS), help="Before this UTC date/time.")
@click.option("--actor", type=click.IntRange(min=0), help="Events by this user id.")
@click.option("--action", type=click.Choice([a.value for a in Action]), help="This action only.")
@click.option("--review", help="Events of this review code.")
@click.option("--document", help="Events about this document reference.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (readable by its owner only) instead of standard output.",
)
@by_option
@pass_cli
def export(
    cli: CliContext,
    by: str | None,
    format_: str,
    since: datetime | None,
    until: datetime | None,
    actor: int | None,
    action: str | None,
    review: str | None,
    document: str | None,
    output: Path | None,
) -> None:
    """Export the log (JSON Lines or CSV), verifiable offline with `audit verify --export`."""
    from audit import export_log

    where = EventFilter(
        actor=actor,
        action=action,
        review=review.strip().upper() if review else None,
        document=document.strip().upper() if document else None,
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
    )
    settings = cli.settings
    key = signing_key(settings)
    log = AuditLog(VOCABULARY, key)
    engine = _engine(settings)
    try:
        person = _person(cli, engine, by, DPO)
        details: dict[str, Any] = {"format": format_, "filtered": not where.is_empty}
        # Checkpoint first: the export then reaches the head and ends on a signature.
        try:
            with engine.begin() as connection:
                log.checkpoint(connection)
        except Exception as refused:  # SQLAlchemy's or, on the driver-level path, psycopg's own
            # A log that refuses to be sealed (a head moved back onto events still there) would
            # refuse this export's event too: nothing leaves unrecorded, so nothing leaves.
            _record(engine, log, person, Action.AUDIT_EXPORTED, False, details)
            raise click.ClickException(EXPORT_REFUSED) from refused
        witnessed = _witnessed(settings, engine, log)
        try:
            with _snapshot(engine) as connection, connection.begin(), _open_output(output) as out:
                summary = export_log(
                    connection,
                    key,
                    out,
                    format="csv" if format_ == "csv" else "jsonl",
                    where=where,
                    now=datetime.now(UTC),
                    witnessed=witnessed,
                    public_keys=log.public_keys,
                )
        except BaseException:
            _record(engine, log, person, Action.AUDIT_EXPORTED, False, details)
            raise
        details.update(
            first_sequence=summary.first_seq, last_sequence=summary.last_seq, events=summary.shown
        )
        _record(engine, log, person, Action.AUDIT_EXPORTED, True, details)
    finally:
        engine.dispose()
    click.echo(
        f"exported {summary.shown} events ({summary.hidden} hidden, digest only) from "
        f"{summary.first_seq} to {summary.last_seq}",
        err=True,
    )
    if summary.witnessed is not None:
        click.echo(f"it carries the checkpoint witnessed at {summary.witnessed}", err=True)


def _witnessed(settings: Settings, engine: Engine, log: AuditLog) -> CheckpointRow | None:
    """The witness's latest checkpoint, after giving it the new ones, for the export to carry.

    A database that contradicts the witness is exported all the same, with the witness's line:
    the offline check then names the cut. A witness out of reach: no line, and a warning.
    """
    witness = open_witness(settings)
    try:
        with engine.connect() as connection:
            witness_checkpoints(connection, witness, log.public_keys)
    except ChainBroken as refused:
        click.echo(f"WARNING: the database contradicts {witness.name}: {refused}", err=True)
    except WitnessError as exc:
        click.echo(f"WARNING: {exc}; the export carries no witnessed checkpoint", err=True)
        return None
    try:
        return witness.latest()
    except WitnessError as exc:
        click.echo(f"WARNING: {exc}; the export carries no witnessed checkpoint", err=True)
        return None


@audit.command("public-key")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def public_key(cli: CliContext, output: Path | None) -> None:
    """Write the audit public key (PEM): all a DPO needs to verify an export offline."""
    key = signing_key(cli.settings).public_key
    if output is None:
        click.echo(key.to_pem().decode("ascii"), nl=False)
    else:
        output.write_bytes(key.to_pem())
    click.echo(f"fingerprint (SHA-256) {key.fingerprint}", err=True)


@contextmanager
def _open_output(output: Path | None) -> Iterator[BinaryIO]:
    if output is None:
        yield sys.stdout.buffer
        return
    if output.exists() and not stat.S_ISREG(output.stat().st_mode):
        # A device or a pipe (/dev/null, a FIFO another program reads): written into, never
        # replaced. Renaming a file over /dev/null as root would turn it into a regular file.
        with output.open("wb") as handle:
            yield handle
        return
    # Written aside and renamed into place: a failed export never leaves a file that looks whole.
    partial = output.with_name(f".{output.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


EXPORT_REFUSED = (
    "the audit log refused to record this export, so nothing was exported: the log does not "
    "verify. Run `portal audit verify` to see where it is broken."
)


def _record(
    engine: Engine,
    log: AuditLog,
    actor: Actor,
    action: Action,
    ok: bool,
    details: dict[str, Any],
) -> None:
    event = AuditEvent(
        action,
        actor,
        outcome=Outcome.SUCCESS if ok else Outcome.FAILURE,
        target=Target(TargetKind.AUDIT_LOG, "audit"),
        details=details,
    )
    try:
        with engine.begin() as connection:
            log.append(connection, event)
    except Exception:  # SQLAlchemy's or, on the driver-level path, psycopg's own
        if ok:
            raise
        # A tampered log can refuse the append itself (a head moved back onto events still
        # there): the finding is still reported, and the event kept pending, not lost.
        with engine.begin() as connection:
            log.enqueue(connection, event)
        click.echo("WARNING: the audit log refused this event; it is stored pending", err=True)


@audit.command("subject-access")
@click.argument("case")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (readable by its owner only) instead of standard output.",
)
@by_option
@pass_cli
def subject_access(
    cli: CliContext, by: str | None, case: str, format_: str, output: Path | None
) -> None:
    """What the portal held for one case reference: its documents, every access to each, holds,
    and the destruction that ended each (audited, as the console's page is)."""
    import json

    from sqlmodel import Session

    from portal.auditing import Origin
    from portal.cli.server import require_current_schema
    from portal.console.subject_access import as_csv, view_subject_access
    from portal.errors import Refusal
    from portal.exchange.acting import Acting
    from portal.exchange.errors import NotFound

    require_current_schema(cli.settings)
    runtime = cli.runtime
    with Session(runtime.engine) as db:
        person = operator_for(cli, db, by, allowed=DPO)
        acting = Acting.as_caller(person, now=runtime.clock(), origin=Origin())
        try:
            found = view_subject_access(db, runtime.auditor, acting, case)
        except NotFound as missing:
            raise CheckFailure(missing.message) from None
        except Refusal as refused:
            raise UsageFailure(refused.message) from None
        db.commit()
    text = as_csv(found) if format_ == "csv" else json.dumps(found, indent=2, sort_keys=True) + "\n"
    with _open_output(output) as out:
        out.write(text.encode("utf-8"))
    click.echo(
        f"case {found['case']['reference']}: {len(found['documents'])} document(s)", err=True
    )

"""``portal destroy`` (with ``portal destroy hold``) and ``portal certificate``.

``destroy hold place|lift|list`` are operator commands, audited with the role ``cli`` like
``portal review``: a hold placed here is a DPO's (active at once).

Exit status: 0 success (or a valid certificate), 1 destruction failed or a certificate is invalid,
2 usage error.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click
from sqlmodel import Session

from audit import Actor, PublicKey, SigningKeyError, load_public_key
from portal.accounts.models import Role
from portal.cli.context import (
    CheckFailure,
    CliContext,
    UsageFailure,
    acting_session,
    by_option,
    operator_for,
    pass_cli,
)
from portal.cli.server import require_current_schema
from portal.destruction.certificates import CertificateInvalid, verify_export
from portal.destruction.models import HoldReason, LiftReason
from portal.destruction.record import entry_json
from portal.destruction.schedule import schedule
from portal.exchange.acting import Acting
from portal.exchange.models import Review
from portal.settings import Settings

DESTROYERS = frozenset({Role.admin, Role.dpo})
# Who may export a certificate: as on the web, a DPO or a lead of its review.
CERTIFICATE_READERS = frozenset({Role.dpo, Role.lead})
# The schedule records nothing: no event ever carries this actor.
READ_ONLY = Actor.system("read_only")


@click.group()
def destroy() -> None:
    """List what is due for destruction, and destroy it now."""


@destroy.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_cli
def due(cli: CliContext, as_json: bool) -> None:
    """Reviews on the destruction schedule, soonest first, with what is held."""
    require_current_schema(cli.settings)
    runtime = cli.runtime
    now = runtime.clock()
    with Session(runtime.engine) as db:
        entries = schedule(db, Acting.operator(now, actor=READ_ONLY), today=now.date())
        rows = [entry_json(e) for e in entries]
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
            continue
        held = f", {len(row['held_documents'])} document(s) held" if row["held_documents"] else ""
        click.echo(
            f"{row['review']:<16} {row['destroy_on']}  {row['status']:<10} "
            f"{row['documents']} document(s){held}"
        )
    if not rows and not as_json:
        click.echo("No review is on the destruction schedule.")


@destroy.command()
@click.option("--dry-run", is_flag=True, help="Show what would be destroyed; change nothing.")
@click.option("--review", "review_code", help="Only this review (if it is due).")
@by_option
@pass_cli
def run(cli: CliContext, by: str | None, dry_run: bool, review_code: str | None) -> None:
    """Destroy every review that is due now; print the certificates issued.

    Needs --by (or PORTAL_OPERATOR): a DPO or an administrator, whom the audit log and the
    certificate name as carrying the destruction out."""
    from portal.destruction.services import destroyer_for

    require_current_schema(cli.settings)
    runtime = cli.runtime
    with Session(runtime.engine) as db:
        person = operator_for(cli, db, by, allowed=DESTROYERS)
    try:
        destroyer = destroyer_for(runtime, actor=person.actor)
    except SigningKeyError as exc:
        raise UsageFailure(str(exc)) from None
    report = destroyer.run_due(now=runtime.clock(), review_code=review_code, dry_run=dry_run)
    for held in report.held:
        what = f"document {held.document}" if held.document else "the whole review"
        click.echo(f"held     {held.review}: {what}")
    for entry in report.planned:
        click.echo(
            f"would destroy {entry.review.code}: "
            f"{entry.documents - len(entry.held_documents)} document(s)"
        )
    for reference in report.certificates:
        click.echo(reference)
    for review in report.unfinished:
        click.echo(f"unfinished {review}: another worker is completing it", err=True)
    for failure in report.failed:
        click.echo(f"FAILED   {failure.review}: {failure.message}", err=True)
    if not report.ok:
        raise CheckFailure("Destruction failed for some reviews; run again to resume.")


@destroy.group()
def hold() -> None:
    """Place, lift and list holds: a hold stops destruction of what it covers."""


def _hold_line(view: dict[str, object]) -> str:
    scope = view["scope"]
    what = (
        f"document {view['document']}"
        if scope == "document"
        else f"case {view['case']}"
        if scope == "case"
        else "the whole review"
    )
    lifted = f", lifted ({view['lift_reason']})" if view["lift_reason"] else ""
    return f"hold {view['id']}: {view['review']}, {what}, {view['reason']}, {view['state']}{lifted}"


@hold.command("place")
@click.option("--review", "review_code", required=True, help="The review's code.")
@click.option("--document", "document", help="Hold this document only.")
@click.option("--case", "case", help="Hold every document of this case, later ones too.")
@click.option("--reason", type=click.Choice([r.value for r in HoldReason]), required=True)
@click.option("--order-reference", help="The order behind the hold, e.g. CO/2027/0142.")
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def hold_place(
    cli: CliContext,
    by: str | None,
    review_code: str,
    document: str | None,
    case: str | None,
    reason: str,
    order_reference: str | None,
    as_json: bool,
) -> None:
    """Place a hold on a review, one of its documents (--document) or one case (--case)."""
    from portal.destruction import holds

    vault = cli.runtime.vault
    # A DPO places a hold; a lead's becomes a request for one, as on the web.
    with acting_session(cli, by, frozenset({Role.dpo, Role.lead})) as (db, auditor, acting):
        placed = holds.place_hold(
            db,
            auditor,
            acting,
            review_code=review_code,
            document_reference=document,
            case_reference=case,
            reason=reason,
            order_reference=order_reference,
            vault=vault,
        )
        db.commit()
        view = holds.hold_view(db, vault, placed)
    click.echo(json.dumps(view, sort_keys=True) if as_json else _hold_line(view))


@hold.command("lift")
@click.argument("hold_id")
@click.option("--reason", type=click.Choice([r.value for r in LiftReason]), required=True)
@click.option("--json", "as_json", is_flag=True)
@by_option
@pass_cli
def hold_lift(cli: CliContext, by: str | None, hold_id: str, reason: str, as_json: bool) -> None:
    """Lift hold HOLD_ID (or decline a lead's request), saying why."""
    from portal.destruction import holds

    vault = cli.runtime.vault
    with acting_session(cli, by, frozenset({Role.dpo})) as (db, auditor, acting):
        lifted = holds.lift_hold(db, auditor, acting, hold_id, reason=reason)
        db.commit()
        view = holds.hold_view(db, vault, lifted)
    click.echo(json.dumps(view, sort_keys=True) if as_json else _hold_line(view))


@hold.command("list")
@click.option("--all", "include_lifted", is_flag=True, help="Lifted holds too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@by_option
@pass_cli
def hold_list(cli: CliContext, by: str | None, include_lifted: bool, as_json: bool) -> None:
    """Holds and leads' requests for holds, newest first."""
    from portal.destruction import holds

    vault = cli.runtime.vault
    with acting_session(cli, by, frozenset({Role.dpo, Role.lead})) as (db, _auditor, acting):
        views = [
            holds.hold_view(db, vault, h)
            for h in holds.list_holds(db, acting, include_lifted=include_lifted)
        ]
    for view in views:
        click.echo(json.dumps(view, sort_keys=True) if as_json else _hold_line(view))
    if not views and not as_json:
        click.echo("No hold.")


@click.group()
def certificate() -> None:
    """Export and verify destruction certificates."""


@certificate.command()
@click.argument("reference")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@by_option
@pass_cli
def export(cli: CliContext, by: str | None, reference: str, output: Path | None) -> None:
    """Write the signed certificate REFERENCE (canonical JSON) to a file or standard output.

    Needs --by (or PORTAL_OPERATOR): a DPO, or a lead of the certificate's review. The export
    is audited (``destruction.certificate_exported``, target the certificate)."""
    from audit import Target
    from portal.audit_vocabulary import Action, TargetKind
    from portal.destruction.services import find_certificate, signed

    require_current_schema(cli.settings)
    with acting_session(cli, by, CERTIFICATE_READERS) as (db, auditor, acting):
        found = find_certificate(db, acting, reference)
        data, exported_reference = signed(found).export(), found.reference
        review = db.get(Review, found.review_id)
        auditor.record_as(
            db,
            acting,
            Action.CERTIFICATE_EXPORTED,
            target=Target(TargetKind.CERTIFICATE, exported_reference),
            review=review.code if review else None,
            details={"format": "certificate", "size_bytes": len(data)},
        )
        # Recorded before the certificate is written out: an export is never unrecorded.
        db.commit()
    if output is None:
        sys.stdout.buffer.write(data + b"\n")
    else:
        output.write_bytes(data + b"\n")
        click.echo(f"certificate {exported_reference} written to {output}", err=True)


def named_key(data: bytes) -> str | None:
    """The fingerprint of the key the certificate says it was signed with (not yet checked)."""
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    named = envelope.get("public_key_fingerprint") if isinstance(envelope, dict) else None
    if isinstance(named, str) and re.fullmatch(r"[A-Za-z0-9:+/=_.-]{1,128}", named):
        return named
    return None


def ask_for_the_key(named: str | None) -> str:
    """Which key file to ask for, for an auditor who has none (on another machine)."""
    which = f"the key whose fingerprint is {named}" if named else "the key it was signed with"
    return (
        "Give the portal's public key: --public-key FILE. Ask the portal's operator for the PEM "
        f"file of {which} (they write it with `portal audit public-key -o portal-public-key.pem`, "
        "which prints its fingerprint to compare)."
    )


def _local_installation(settings: Settings) -> bool:
    """Whether this machine holds a portal to take the key from (never creating one to look)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        return bool(path) and path != ":memory:" and Path(path).is_file()
    return True


def _local_key(cli: CliContext, named: str | None) -> PublicKey:
    from portal.destruction.services import signing_key
    from portal.keys import KeyServiceRefused
    from storage import StorageError

    try:
        settings = cli.settings
    except UsageFailure as bad:
        raise UsageFailure(f"{bad.message} {ask_for_the_key(named)}") from None
    if not _local_installation(settings):
        raise UsageFailure(f"There is no portal on this machine. {ask_for_the_key(named)}")
    try:
        return signing_key(settings).public_key
    except (KeyServiceRefused, SigningKeyError, StorageError, OSError) as exc:
        raise UsageFailure(
            f"This machine's portal key cannot be used ({exc}). {ask_for_the_key(named)}"
        ) from None


@certificate.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    "public_key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The portal's public key (PEM, from `portal audit public-key`). Without it, the key "
    "of the portal on this machine is used; on another machine, ask for the key the "
    "certificate names.",
)
@pass_cli
def verify(cli: CliContext, file: Path, public_key_file: Path | None) -> None:
    """Check a signed certificate offline: exit 0 if valid, 1 if not."""
    data = file.read_bytes()
    named = named_key(data)
    if public_key_file is not None:
        try:
            key = load_public_key(public_key_file)
        except SigningKeyError as exc:
            raise UsageFailure(str(exc)) from None
    else:
        key = _local_key(cli, named)
    try:
        content = verify_export(data, key)
    except CertificateInvalid as invalid:
        hint = ""
        if public_key_file is None and named is not None and named != key.fingerprint:
            hint = (
                f" It names the key {named}; this machine's portal key is {key.fingerprint}. If "
                f"it comes from another portal: {ask_for_the_key(named)}"
            )
        raise CheckFailure(f"INVALID: {invalid}" + (f".{hint}" if hint else "")) from None
    uploads = content.get("unfinished_uploads")
    discarded = (
        f", {uploads.get('count')} unfinished upload(s) with "
        f"{uploads.get('part_blobs_deleted')} part(s) discarded"
        if isinstance(uploads, dict)
        else ""  # a certificate issued before uploads were counted
    )
    review_key = content.get("review_key")
    kept = (
        f", {len(content.get('kept_documents', []))} kept, review key {review_key.get('state')}"
        if isinstance(review_key, dict)
        else ""  # format /1: the key's fate is only in its verification block
    )
    click.echo(
        f"valid: certificate {content.get('reference')} for review "
        f"{content.get('review', {}).get('code')}, {len(content.get('documents', []))} "
        f"document(s){discarded}{kept}, issued {content.get('issued_at')}, key {key.fingerprint}"
    )

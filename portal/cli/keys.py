"""``portal keys status | rotate``: the key hierarchy, for administrators.

Rotation re-wraps keys and never rewrites a blob. A master-key rotation re-wraps every review key in
the key store; a review-key rotation re-wraps the review's document keys held in the database and
the data keys of its sealed texts (request titles and instructions, hold orders:
``portal.sealing``), the database commits, and only then are the old review-key versions erased
(so a crash in between leaves everything readable, and no sealed text is left on an erased key).
"""

from __future__ import annotations

import json

import click
from sqlmodel import Session, col, select

from audit import Target
from portal.accounts.models import Role
from portal.audit_vocabulary import Action, TargetKind
from portal.cli.context import (
    CheckFailure,
    CliContext,
    UsageFailure,
    by_option,
    operator_for,
    pass_cli,
)
from portal.exchange.models import Document, Review
from portal.keys import checked_keys
from portal.sealing import sealed_texts
from storage import DocumentKey, StorageError


@click.group()
def keys() -> None:
    """Master keys and review keys (ids and counts only; never key material)."""


@keys.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def keys_status(cli: CliContext, as_json: bool) -> None:
    """Which master keys exist, which is primary, how many review keys each wraps."""
    try:
        keys = checked_keys(cli.settings)
        status = keys.status()
        installation = keys.installation()
    except StorageError as problem:
        raise CheckFailure(str(problem)) from None
    data = {
        "key_service": keys.description,
        "installation": installation.id if installation else None,
        "master_keys": list(status.master_key_ids),
        "primary": status.primary_master_key_id,
        "reviews_with_a_key": status.reviews,
        "destroyed_reviews": status.destroyed_reviews,
        "review_keys_by_master_key": status.review_keys_by_master,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"key service         {keys.description}")
    if installation is not None:
        click.echo(f"installation        {installation.describe()}")
    if status.primary_master_key_id:
        click.echo(f"primary master key  {status.primary_master_key_id}")
    for key_id in status.master_key_ids:
        wraps = status.review_keys_by_master.get(key_id, 0)
        click.echo(f"master key          {key_id}  wraps {wraps} review key version(s)")
    click.echo(f"reviews with a key  {status.reviews}")
    click.echo(f"destroyed reviews   {status.destroyed_reviews}")


@keys.command("rotate")
@click.option("--review", "review_code", help="Rotate this review's key instead of the master key.")
@click.option(
    "--remove-old",
    is_flag=True,
    help="After a master-key rotation, erase the master keys nothing depends on any more.",
)
@by_option
@pass_cli
def keys_rotate(cli: CliContext, by: str | None, review_code: str | None, remove_old: bool) -> None:
    """Rotate the master key (default) or one review's key; no blob is rewritten."""
    runtime = cli.runtime
    vault, auditor = runtime.vault, runtime.auditor
    now = runtime.clock()
    try:
        with Session(runtime.engine) as db:
            actor = operator_for(cli, db, by, allowed=frozenset({Role.admin})).actor
            if review_code is None:
                new_id = vault.rotate_master_key()
                removed = 0
                if remove_old:
                    for key_id in vault.key_status().master_key_ids:
                        if key_id != new_id:
                            vault.remove_master_key(key_id)
                            removed += 1
                auditor.record(
                    db,
                    Action.KEY_ROTATED,
                    actor=actor,
                    now=now,
                    target=Target(TargetKind.KEY, new_id[:64]),
                    details={"count": removed},
                )
                db.commit()
                click.echo(f"new primary master key {new_id}; {removed} old master key(s) erased")
                return
            review = db.exec(
                select(Review).where(Review.code == review_code.strip().upper())
            ).first()
            if review is None:
                raise UsageFailure(f"There is no review {review_code!r}.")
            documents = list(
                db.exec(
                    select(Document)
                    .where(Document.review_id == review.id, col(Document.wrapped_key).is_not(None))
                    .order_by(col(Document.id))
                ).all()
            )
            old = [
                DocumentKey(
                    review=review.code, document_id=d.reference, wrapped=d.wrapped_key or b""
                )
                for d in documents
            ]
            texts = sealed_texts(db, review)
            text_keys = [vault.text_key(text.place, text.sealed) for text in texts]
            rotated = vault.rotate_review_key(review.code, old + text_keys)
            for document, key in zip(documents, rotated[: len(old)], strict=True):
                document.wrapped_key = key.wrapped
                db.add(document)
            for text, key in zip(texts, rotated[len(old) :], strict=True):
                text.store(vault.rekey_text(text.sealed, key))
                db.add(text.row)
            auditor.record(
                db,
                Action.KEY_ROTATED,
                actor=actor,
                now=now,
                target=Target(TargetKind.REVIEW, review.code),
                review=review.code,
                details={"count": len(rotated)},
            )
            db.commit()
            erased = vault.remove_old_review_keys(review.code, in_use=rotated)
            click.echo(
                f"review {review.code}: {len(old)} document key(s) re-wrapped, "
                f"{len(texts)} sealed text key(s) re-wrapped, "
                f"{erased} old review key version(s) erased"
            )
    except StorageError as problem:
        raise CheckFailure(str(problem)) from None

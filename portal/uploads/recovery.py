"""Uploads whose completion was abandoned, finished by ``portal worker``.

A process that received an upload's last byte and died while turning its parts into a document
(SIGKILL, a power cut, a deploy that did not wait) leaves the session ``completing`` under a lease
that nobody renews. Once the lease has run out, the client's next request (``portal upload`` run
again, tus-js-client resuming: an empty PATCH at the final offset) takes the completion over, and
so does the worker, whichever comes first: the claim is a compare-and-set, so exactly one of them
makes the document. The worker acts for the person who uploaded, with their rights checked again
as at any completion; the upload of a person disabled meanwhile is left to expire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from portal.accounts.models import User
from portal.auditing import Auditor, Origin
from portal.errors import Refusal
from portal.exchange.acting import Acting
from portal.uploads.errors import OffsetConflict
from portal.uploads.models import UploadSession, UploadState
from portal.uploads.sessions import claim_completion, complete_upload, new_lease_owner
from storage import Vault

log = logging.getLogger(__name__)


@dataclass
class Recovered:
    """What one pass did: references of the documents made, and how many were refused."""

    documents: list[str] = field(default_factory=list)
    refused: int = 0
    failed: int = 0


def abandoned_completions(db: Session, *, now: datetime, limit: int) -> list[str]:
    """Uploads left ``completing`` whose lease has run out (a missing lease has too)."""
    return list(
        db.exec(
            select(UploadSession.id)
            .join(User, col(User.id) == col(UploadSession.user_id))
            .where(
                UploadSession.state == UploadState.completing,
                or_(
                    col(UploadSession.lease_until).is_(None),
                    col(UploadSession.lease_until) <= now,
                ),
                col(UploadSession.expires_at) > now,
                col(User.disabled_at).is_(None),
            )
            .order_by(col(UploadSession.updated_at))
            .limit(limit)
        ).all()
    )


def finish_abandoned_uploads(
    engine: Engine,
    vault: Vault,
    auditor: Auditor,
    *,
    clock: Callable[[], datetime],
    max_bytes: int,
    limit: int = 20,
) -> Recovered:
    """Take over and finish every abandoned completion (up to ``limit``)."""
    done = Recovered()
    with Session(engine) as db:
        upload_ids = abandoned_completions(db, now=clock(), limit=limit)
    for upload_id in upload_ids:
        owner = new_lease_owner()
        with Session(engine) as db:
            upload = db.get(UploadSession, upload_id)
            user = db.get(User, upload.user_id) if upload is not None else None
            if user is None or user.id is None:
                continue
            acting = Acting.of(
                user_id=user.id,
                role=user.role,
                organisation_id=user.organisation_id,
                now=clock(),
                origin=Origin(),
            )
            claimed = claim_completion(db, acting, upload_id, owner=owner)
            db.commit()
        if not claimed:  # the client's own retry, or another worker, was first
            continue
        try:
            reference = complete_upload(
                engine,
                vault,
                auditor,
                acting,
                upload_id,
                max_bytes=max_bytes,
                owner=owner,
                clock=clock,
            )
        except OffsetConflict:  # taken over meanwhile by somebody else, who finishes it
            continue
        except Refusal:  # refused (audited, nothing kept), as that last PATCH would be
            done.refused += 1
            continue
        except Exception as exc:
            # Back to ``receiving`` with every byte kept: the client's next PATCH tries again.
            log.warning("could not finish an abandoned upload (%s)", type(exc).__name__)
            done.failed += 1
            continue
        done.documents.append(reference)
    return done

"""The anomaly rules, each on events crafted at chosen times (the time is passed in), and quiet on
an ordinary working day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

import audit
from audit import Actor, AuditEvent, Outcome, Target
from portal.audit_vocabulary import VOCABULARY, Action, TargetKind
from portal.auditing import SIGNING_KEY_FILE
from portal.console import anomalies
from portal.db import make_engine
from portal.settings import AlertThresholds
from tests.portal.conftest import Exchange, World, sign_in

MONDAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # GMT: UK time is UTC
SUMMER_TUESDAY = datetime(2026, 7, 7, 12, 0, tzinfo=UTC)  # BST: UK time is UTC + 1
DOCUMENT = "7KQ2-M9XD-3TPW"


@pytest.fixture
def engine(world: World) -> Iterator[Engine]:
    built = make_engine(world.settings.database_url)
    yield built
    built.dispose()


@pytest.fixture
def log(world: World) -> audit.AuditLog:
    return audit.AuditLog(
        VOCABULARY, audit.load_signing_key(world.settings.key_dir / SIGNING_KEY_FILE)
    )


def _append(
    engine: Engine,
    log: audit.AuditLog,
    action: Action,
    at: datetime,
    *,
    user: int | None = 7,
    client: str | None = "198.51.100.7",
    outcome: Outcome = Outcome.SUCCESS,
    document_ref: str = DOCUMENT,
) -> None:
    document = document_ref if action.value.startswith("document.") else None
    event = AuditEvent(
        action,
        Actor(user, "inspector" if user else None, 1 if user else None),
        outcome=outcome,
        target=Target(TargetKind.DOCUMENT, document) if document else None,
        review="SWG24" if document else None,
        document=document,
        client=client,
    )
    with engine.begin() as connection:
        log.append(connection, event, now=at)


def _rules(connection: Connection, now: datetime) -> dict[str, list[anomalies.Anomaly]]:
    found: dict[str, list[anomalies.Anomaly]] = {}
    for item in anomalies.find_anomalies(connection, now=now):
        found.setdefault(item.rule, []).append(item)
    return found


def test_more_than_n_downloads_within_an_hour(engine: Engine, log: audit.AuditLog) -> None:
    # User 7: 20 downloads in 40 minutes (allowed), then quiet; user 8: 21 in 50 minutes.
    for n in range(20):
        _append(engine, log, Action.DOCUMENT_DOWNLOADED, MONDAY + timedelta(minutes=2 * n))
    for n in range(21):
        _append(
            engine, log, Action.DOCUMENT_DOWNLOADED, MONDAY + timedelta(minutes=150 + n), user=8
        )
    # User 9: 21 downloads over three hours: steady work, not a burst.
    for n in range(21):
        _append(engine, log, Action.DOCUMENT_DOWNLOADED, MONDAY + timedelta(minutes=9 * n), user=9)
    with engine.connect() as connection:
        found = anomalies.bulk_downloads(connection, now=MONDAY + timedelta(hours=5))
        assert [(a.user_id, a.count) for a in found] == [(8, 21)]
        assert len(found[0].sequences) == 21
        # Configurable: with a lower limit, user 7 is flagged too.
        lower = anomalies.bulk_downloads(connection, now=MONDAY + timedelta(hours=5), limit=19)
        assert {a.user_id for a in lower} == {7, 8}
        # Outside the window (a week later), nothing.
        assert not anomalies.bulk_downloads(connection, now=MONDAY + timedelta(days=8))


def test_many_different_documents_within_an_hour(engine: Engine, log: audit.AuditLog) -> None:
    """Issue 17: bursts by documents as well as by downloads. User 7 takes 11 different documents
    in 11 minutes (a harvest the download count, 11 <= 20, misses); user 8 downloads one document
    30 times (many downloads, one document)."""
    for n in range(11):
        when = MONDAY + timedelta(minutes=n)
        _append(engine, log, Action.DOCUMENT_DOWNLOADED, when, document_ref=f"DOC-{n:04d}")
    for n in range(30):
        _append(engine, log, Action.DOCUMENT_DOWNLOADED, MONDAY + timedelta(minutes=n), user=8)
    now = MONDAY + timedelta(hours=2)
    with engine.connect() as connection:
        documents = anomalies.bulk_documents(connection, now=now)
        assert [(a.user_id, a.count) for a in documents] == [(7, 11)]
        downloads = anomalies.bulk_downloads(connection, now=now)
        assert [(a.user_id, a.count) for a in downloads] == [(8, 30)]
        # The thresholds are settings (PORTAL_ALERT_*).
        strict = anomalies.find_anomalies(
            connection, now=now, thresholds=AlertThresholds(bulk_documents=11, bulk_downloads=30)
        )
        assert [a.rule for a in strict if a.rule.startswith("bulk")] == []


def test_out_of_hours_is_one_finding_per_user_per_night(
    engine: Engine, log: audit.AuditLog
) -> None:
    # Tuesday 19:00 to Wednesday 07:30 (winter, UTC = UK time) is one night for user 7; user 8's
    # view the same night is theirs; Wednesday 18:30 starts the next night.
    tuesday = MONDAY + timedelta(days=1)
    for hhmm in ("19:00", "23:10"):
        hours, minutes = (int(x) for x in hhmm.split(":"))
        _append(
            engine, log, Action.DOCUMENT_DOWNLOADED, tuesday.replace(hour=hours, minute=minutes)
        )
    _append(
        engine,
        log,
        Action.DOCUMENT_METADATA_VIEWED,
        tuesday.replace(hour=7, minute=30) + timedelta(days=1),
    )
    _append(engine, log, Action.DOCUMENT_DOWNLOADED, tuesday.replace(hour=21), user=8)
    _append(
        engine,
        log,
        Action.DOCUMENT_DOWNLOADED,
        tuesday.replace(hour=18, minute=30) + timedelta(days=1),
    )
    with engine.connect() as connection:
        found = anomalies.out_of_hours(connection, now=tuesday + timedelta(days=2))
    assert sorted((a.user_id, a.count) for a in found) == [(7, 1), (7, 3), (8, 1)]
    night = next(a for a in found if a.count == 3)
    assert night.action is None and night.document == DOCUMENT  # two kinds of access, one file


@pytest.mark.parametrize(
    ("local_day", "moments", "flagged"),
    [
        # Winter (GMT): 07:59 and 18:00 are outside; 08:00 and 17:59 inside.
        (MONDAY, ["07:59", "08:00", "17:59", "18:00"], ["07:59", "18:00"]),
        # Summer (BST): 07:30 UTC is 08:30 in the UK (inside); 17:30 UTC is 18:30 (outside).
        (SUMMER_TUESDAY, ["06:59", "07:30", "16:59", "17:30"], ["06:59", "17:30"]),
        # A Saturday at noon.
        (MONDAY - timedelta(days=2), ["12:00"], ["12:00"]),
    ],
    ids=["winter", "summer", "weekend"],
)
def test_access_outside_uk_working_hours(
    engine: Engine,
    log: audit.AuditLog,
    local_day: datetime,
    moments: list[str],
    flagged: list[str],
) -> None:
    def at(hhmm: str) -> datetime:
        hours, minutes = (int(part) for part in hhmm.split(":"))
        return local_day.replace(hour=hours, minute=minutes)

    for n, moment in enumerate(moments):
        action = Action.DOCUMENT_DOWNLOADED if n % 2 else Action.DOCUMENT_METADATA_VIEWED
        _append(engine, log, action, at(moment))
    _append(engine, log, Action.DOCUMENT_UPLOADED, at("23:00"))  # not an access: never flagged
    with engine.connect() as connection:
        found = anomalies.out_of_hours(connection, now=local_day + timedelta(days=1))
    assert sorted(a.started_at for a in found) == [at(m) for m in flagged]
    assert all(a.document == DOCUMENT and a.user_id == 7 for a in found)


def test_repeated_failed_sign_ins_per_account_and_per_address(
    engine: Engine, log: audit.AuditLog
) -> None:
    failed = Outcome.FAILURE
    # Account 7: four failures, then a fifth within the hour (password and code steps count).
    for n in range(5):
        action = Action.SIGN_IN_FAILED if n % 2 else Action.MFA_FAILED
        _append(
            engine, log, action, MONDAY + timedelta(minutes=10 * n), client=None, outcome=failed
        )
    # Account 8: four failures only.
    for n in range(4):
        _append(
            engine,
            log,
            Action.SIGN_IN_FAILED,
            MONDAY + timedelta(minutes=n),
            user=8,
            client=None,
            outcome=failed,
        )
    # One address guessing at unknown accounts (no user): five in twenty minutes.
    for n in range(5):
        _append(
            engine,
            log,
            Action.SIGN_IN_FAILED,
            MONDAY + timedelta(hours=3, minutes=4 * n),
            user=None,
            client="203.0.113.9",
            outcome=failed,
        )
    with engine.connect() as connection:
        found = anomalies.failed_sign_ins(connection, now=MONDAY + timedelta(hours=6))
    assert sorted((a.user_id, a.client, a.count) for a in found if a.user_id) == [(7, None, 5)]
    assert [(a.client, a.count) for a in found if a.client] == [("203.0.113.9", 5)]


def test_quiet_on_an_ordinary_day_and_shown_on_the_page_and_the_api(
    exchange: Exchange, engine: Engine, log: audit.AuditLog
) -> None:
    world = exchange.world
    sent = exchange.upload("uploader", b"Minutes of the meeting.\n" * 10)
    reference = sent.json()["reference"]
    inspector = exchange.tokens["inspector"]
    for _ in range(3):
        assert exchange.client.get(f"/api/v1/documents/{reference}", headers=inspector).is_success
    dpo = exchange.tokens["dpo"]
    quiet = exchange.client.get("/api/v1/audit/anomalies", headers=dpo)
    assert quiet.status_code == 200 and quiet.json()["items"] == []
    sign_in(exchange.client, world.people["dpo"], world.clock)
    assert 'id="no-anomalies"' in exchange.client.get("/console/anomalies").text

    # At 22:00 the same views are out of hours; five bad passwords on one account follow.
    world.clock.advance(hours=13)
    for _ in range(2):
        assert exchange.client.get(f"/api/v1/documents/{reference}", headers=inspector).is_success
    lead = world.people["lead"]
    for _ in range(5):
        _append(
            engine,
            log,
            Action.SIGN_IN_FAILED,
            world.clock(),
            user=lead.user_id,
            outcome=Outcome.FAILURE,
        )
    found = exchange.client.get("/api/v1/audit/anomalies", headers=dpo).json()["items"]
    rules = sorted(item["rule"] for item in found)
    # The two late views are one finding (one user, one night), not one per event (issue 17).
    assert rules == ["failed_sign_ins", "failed_sign_ins", "out_of_hours"]
    assert [i["count"] for i in found if i["rule"] == "out_of_hours"] == [2]
    assert {i["email"] for i in found if i["rule"] == "out_of_hours"} == {
        world.people["inspector"].email
    }
    sign_in(exchange.client, world.people["dpo"], world.clock)  # the session has timed out
    page = exchange.client.get("/console/anomalies").text
    assert page.count('data-rule="out_of_hours"') == 1 and lead.email in page
    narrow = exchange.client.get("/api/v1/audit/anomalies?days=400", headers=dpo)
    assert narrow.status_code == 400

"""Alerts that reach people (issue 17): anomalies were shown on a page only, and nobody was told.

The worker raises each finding once, e-mails every active DPO (content-free) through a real SMTP
server (aiosmtpd), writes one JSON line per alert on the log stream, and a DPO acknowledges an
alert in the console or the API (audited). SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import audit
from audit import Actor, AuditEvent, Outcome, Target
from audit.tables import checkpoint_table
from portal.audit_vocabulary import VOCABULARY, Action, TargetKind
from portal.auditing import SIGNING_KEY_FILE
from portal.console import alerts
from portal.db import make_engine
from portal.runtime import build_runtime
from portal.settings import AlertThresholds, Settings, SettingsError, SmtpAddress
from portal.worker import Worker
from tests.harness.mail import Inbox, smtp_server
from tests.portal.conftest import Exchange, World, cheap_hasher, csrf_from, sign_in

REPO = Path(__file__).resolve().parents[3]
ADDRESS = "testclient"  # the client address Starlette's TestClient reports
NIGHT = datetime(2026, 11, 3, 21, 0, tzinfo=UTC)  # a Tuesday, 21:00 UK time (GMT)


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, SmtpAddress]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def engine(world: World) -> Iterator[Engine]:
    built = make_engine(world.settings.database_url)
    yield built
    built.dispose()


def _worker(world: World, smtp: SmtpAddress | None = None) -> Worker:
    settings = dataclasses.replace(world.settings, smtp=smtp)
    return Worker(build_runtime(settings, clock=world.clock, password_hasher=cheap_hasher()))


def _fail_sign_in(exchange: Exchange, times: int, who: str = "inspector") -> None:
    client, person = exchange.client, exchange.world.people[who]
    for n in range(times):
        page = client.get("/sign-in")
        client.post(
            "/sign-in",
            data={
                "email": person.email,
                "password": f"not the password {n}",
                "csrf_token": csrf_from(page.text),
            },
        )


def _alerts(engine: Engine) -> list[alerts.Alert]:
    with Session(engine) as db:
        return list(db.exec(select(alerts.Alert).order_by(alerts.Alert.id)).all())  # type: ignore[arg-type]


def _events(engine: Engine, action: Action) -> list[audit.AuditRecord]:
    with engine.connect() as connection:
        page = audit.search(connection, audit.EventFilter(action=action.value), limit=1000)
    return list(page.records)


def test_a_burst_of_failed_sign_ins_is_mailed_to_the_dpos_once_and_logged(
    exchange: Exchange,
    inbox: tuple[Inbox, SmtpAddress],
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mails, smtp = inbox
    world = exchange.world
    worker = _worker(world, smtp)
    worker.run_round(force=True)
    assert mails.messages == [] and _alerts(engine) == []  # an ordinary start: nothing to tell

    _fail_sign_in(exchange, 5)
    with caplog.at_level(logging.WARNING, logger="portal.alerts"):
        done = worker.run_round(force=True)
    raised = _alerts(engine)
    # One finding for the account (the test client has no IP address, so none for an address).
    inspector = world.people["inspector"]
    assert [(a.rule, a.user_id) for a in raised] == [("failed_sign_ins", inspector.user_id)]
    assert done.alerts == 1 and done.alerts_mailed == 1

    dpo = world.people["dpo"].email
    assert [to for to, _ in mails.messages] == [[dpo]]
    for _, message in mails.messages:
        assert message["Subject"].startswith("Portal audit alert ")
        assert "Repeated failed sign-ins" in message["Subject"]
        text = message.get_payload()
        assert isinstance(text, str)
        assert "/console/alerts" in text and "How many: 5" in text
        # Content-free: not who, not from where.
        for secret in (inspector.email, ADDRESS, "Care Inspectorate", "inspector"):
            assert secret not in text and secret not in message["Subject"]

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "portal.alerts"]
    assert [(line["event"], line["rule"]) for line in lines] == [("audit_alert", "failed_sign_ins")]
    assert [line["alert"] for line in lines] == [a.id for a in raised]
    assert all(line["count"] == 5 and line["first_seq"] for line in lines)
    assert ADDRESS not in caplog.text and inspector.email not in caplog.text

    # The same burst going on is the same alert, brought up to date, never mailed again.
    _fail_sign_in(exchange, 2)
    again = worker.run_round(force=True)
    assert again.alerts == 0 and again.alerts_mailed == 0 and len(mails.messages) == 1
    assert [a.count for a in _alerts(engine)] == [7]


def test_an_alert_waits_for_the_relay_and_is_sent_when_it_answers(
    exchange: Exchange, inbox: tuple[Inbox, SmtpAddress], engine: Engine
) -> None:
    mails, smtp = inbox
    world = exchange.world
    _fail_sign_in(exchange, 5)
    down = _worker(world, SmtpAddress(host="127.0.0.1", port=1))  # nothing listens there
    assert down.run_round(force=True).alerts_mailed == 0
    assert len(_alerts(engine)) == 1 and all(a.mailed_at is None for a in _alerts(engine))
    up = _worker(world, smtp)
    assert up.run_round(force=True).alerts_mailed == 1 and len(mails.messages) == 1
    assert up.run_round(force=True).alerts_mailed == 0


def test_a_dpo_acknowledges_an_alert_in_the_console_and_the_api_and_it_is_audited(
    exchange: Exchange, engine: Engine
) -> None:
    world, client = exchange.world, exchange.client
    _fail_sign_in(exchange, 5)
    _fail_sign_in(exchange, 5, "uploader")
    _worker(world).run_round(force=True)
    first, second = _alerts(engine)
    dpo_token = exchange.tokens["dpo"]

    listed = client.get("/api/v1/audit/alerts", headers=dpo_token)
    assert listed.status_code == 200, listed.text
    assert {item["id"] for item in listed.json()["items"]} == {first.id, second.id}
    assert all(item["acknowledged_at"] is None for item in listed.json()["items"])
    for who in ("uploader", "inspector", "lead", "admin"):
        hidden = client.get("/api/v1/audit/alerts", headers=exchange.tokens[who])
        assert hidden.status_code == 404, who
        refused = client.post(
            f"/api/v1/audit/alerts/{first.id}/acknowledge", headers=exchange.tokens[who]
        )
        assert refused.status_code == 404, who

    acknowledged = client.post(f"/api/v1/audit/alerts/{first.id}/acknowledge", headers=dpo_token)
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["acknowledged_by"] == world.people["dpo"].user_id
    twice = client.post(f"/api/v1/audit/alerts/{first.id}/acknowledge", headers=dpo_token)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_acknowledged"
    extra = client.post(
        f"/api/v1/audit/alerts/{second.id}/acknowledge", headers=dpo_token, json={"note": "x"}
    )
    assert extra.status_code == 400 and extra.json()["error"]["code"] == "unknown_field"

    sign_in(client, world.people["dpo"], world.clock)
    page = client.get("/console/alerts")
    assert page.status_code == 200
    assert f'data-alert="{second.id}"' in page.text and "Acknowledge" in page.text
    done = client.post(
        f"/console/alerts/{second.id}/acknowledge", data={"csrf_token": csrf_from(page.text)}
    )
    assert done.status_code == 303 and done.headers["location"] == "/console/alerts"
    assert all(a.acknowledged_at is not None for a in _alerts(engine))
    missing = client.post(
        "/console/alerts/999999/acknowledge", data={"csrf_token": csrf_from(page.text)}
    )
    assert missing.status_code == 404

    events = _events(engine, Action.ALERT_ACKNOWLEDGED)
    acknowledged_refs = sorted(e.target.ref if e.target else "" for e in events)  # newest first
    assert acknowledged_refs == sorted([str(first.id), str(second.id)])
    assert all(e.actor.user_id == world.people["dpo"].user_id for e in events)
    assert all(e.details == {"rule": "failed_sign_ins", "count": 5} for e in events)


def _append(
    engine: Engine,
    log: audit.AuditLog,
    action: Action,
    at: datetime,
    *,
    user: int = 7,
    outcome: Outcome = Outcome.SUCCESS,
    details: dict[str, str] | None = None,
) -> None:
    document = "7KQ2-M9XD-3TPW"
    event = AuditEvent(
        action,
        Actor(user, "inspector", 1),
        outcome=outcome,
        target=Target(TargetKind.DOCUMENT, document),
        review="SWG24",
        document=document,
        client="198.51.100.7",
        details=details or {},
    )
    with engine.begin() as connection:
        log.append(connection, event, now=at)


def test_a_late_night_is_one_alert_however_the_days_window_moves(
    world: World, engine: Engine
) -> None:
    log = audit.AuditLog(
        VOCABULARY, audit.load_signing_key(world.settings.key_dir / SIGNING_KEY_FILE)
    )
    limits = AlertThresholds()
    for minutes in (0, 60, 240, 500):  # 21:00 to 05:20 UK time: one night
        _append(engine, log, Action.DOCUMENT_DOWNLOADED, NIGHT + timedelta(minutes=minutes))
    first = alerts.raise_alerts(engine, now=NIGHT + timedelta(hours=9), thresholds=limits)
    assert [(a.rule, a.count) for a in first] == [("out_of_hours", 4)]
    # A day later the first events are out of the look-back window: the rest is not a new night.
    later = NIGHT + timedelta(hours=9, minutes=30) + alerts.LOOK_BACK - timedelta(minutes=150)
    assert alerts.raise_alerts(engine, now=later, thresholds=limits) == []
    assert len(_alerts(engine)) == 1


def test_refusals_by_one_user_are_an_alert(world: World, engine: Engine) -> None:
    """A signed-in user probing for references they may not see: every refusal is an event
    (outcome denied), and more than PORTAL_ALERT_REFUSALS of them within an hour an alert."""
    log = audit.AuditLog(
        VOCABULARY, audit.load_signing_key(world.settings.key_dir / SIGNING_KEY_FILE)
    )
    monday = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    limits = AlertThresholds(refusals=3)
    for n in range(3):
        _append(engine, log, Action.DOCUMENT_DOWNLOADED, monday, outcome=Outcome.DENIED, user=8)
        _append(
            engine,
            log,
            Action.DOCUMENT_DOWNLOADED,
            monday + timedelta(minutes=n),
            outcome=Outcome.DENIED,
        )
    # Waiting for a scan is not probing: refusals with reason not_available do not count.
    for _ in range(5):
        _append(
            engine,
            log,
            Action.DOCUMENT_DOWNLOADED,
            monday,
            outcome=Outcome.DENIED,
            user=9,
            details={"reason": "not_available"},
        )
    # User 8: three refusals, not more than three; user 7: a fourth within the hour.
    _append(
        engine,
        log,
        Action.DOCUMENT_METADATA_VIEWED,
        monday + timedelta(minutes=40),
        outcome=Outcome.DENIED,
    )
    found = alerts.raise_alerts(engine, now=monday + timedelta(hours=1), thresholds=limits)
    assert [(a.rule, a.user_id, a.count) for a in found] == [("refusals", 7, 4)]


def test_the_worker_alerts_on_a_witness_contradicted_and_on_an_unsigned_tail(
    exchange: Exchange, engine: Engine
) -> None:
    world = exchange.world
    worker = _worker(world)
    worker.run_round(force=True)
    assert exchange.upload("uploader", b"Minutes.\n" * 40, "minutes.txt").status_code == 201
    # Nothing signs the log for three minutes (the worker was stopped): when it runs again,
    # the tail it signs had waited longer than twice the checkpoint interval.
    world.clock.advance(seconds=180)
    done = worker.run_round(force=True)
    assert [a.rule for a in _alerts(engine)] == ["unsigned_tail"], done
    assert _alerts(engine)[0].count >= 1
    assert worker.run_round(force=True).alerts == 0  # raised once

    # Checkpoints removed from the database after the witness took them: a contradiction.
    with engine.begin() as connection:
        connection.execute(delete(checkpoint_table))
    contradicted = worker.run_round(force=True)
    assert contradicted.witness_contradicted, contradicted
    assert [a.rule for a in _alerts(engine)] == ["unsigned_tail", "witness_mismatch"]
    assert worker.run_round(force=True).alerts == 0


def test_the_thresholds_are_settings_and_the_console_guide_gives_their_defaults(
    tmp_path: Path,
) -> None:
    chosen = Settings.from_environ(
        {
            "PORTAL_HOME": str(tmp_path),
            "PORTAL_ALERT_REFUSALS": "3",
            "PORTAL_ALERT_BULK_DOCUMENTS": "4",
        }
    ).alert_thresholds
    assert chosen == AlertThresholds(refusals=3, bulk_documents=4)
    with pytest.raises(SettingsError, match="PORTAL_ALERT_REFUSALS"):
        Settings.from_environ({"PORTAL_HOME": str(tmp_path), "PORTAL_ALERT_REFUSALS": "many"})
    guide = (REPO / "docs" / "dpo-console.md").read_text()
    defaults = AlertThresholds()
    for field in dataclasses.fields(AlertThresholds):
        row = f"| `PORTAL_ALERT_{field.name.upper()}` | {getattr(defaults, field.name)} |"
        assert row in guide, row


def test_portal_worker_writes_the_alert_as_a_json_line_and_mails_it(
    exchange: Exchange, inbox: tuple[Inbox, SmtpAddress]
) -> None:
    """The command operators run: its log stream (standard error) carries the JSON line. The
    world's clock stands weeks before the real one and nothing signed the log since, so the real
    worker finds an unsigned tail far older than two minutes."""
    mails, smtp = inbox
    settings = exchange.world.settings
    env = {
        "PATH": os.environ["PATH"],
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_CLAMD": str(settings.clamd),
        "PORTAL_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
        "PORTAL_SMTP_URL": f"smtp://{smtp.host}:{smtp.port}",
        "PORTAL_NOTICE_FROM": "portal@inspectorate.example",
    }
    portal = Path(sys.executable).parent / "portal"
    done = subprocess.run(
        [str(portal), "worker", "--once"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(line["event"], line["rule"]) for line in lines] == [("audit_alert", "unsigned_tail")]
    assert "alerts: 1 new, 1 mailed" in done.stdout
    assert [message["Subject"] for _, message in mails.messages] == [
        f"Portal audit alert {lines[0]['alert']}: Audit events left unsigned too long"
    ]


def test_a_burst_whose_start_left_the_window_updates_its_alert_and_a_later_one_is_new(
    world: World, engine: Engine
) -> None:
    """Overlap decides "the same finding" when the anchor moved; a burst an hour and more after
    the last one ended is a new alert."""
    start = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)

    def burst(anchor_minutes: int, ends_minutes: int, count: int) -> alerts.Finding:
        return alerts.Finding(
            "failed_sign_ins",
            "client:192.0.2.7",
            (start + timedelta(minutes=anchor_minutes)).isoformat(),
            count,
            start + timedelta(minutes=anchor_minutes),
            start + timedelta(minutes=ends_minutes),
        )

    with Session(engine) as db:
        assert alerts._record(db, burst(0, 10, 6), start) is not None
        # The same burst seen later, its first events gone from the window: no new alert.
        assert alerts._record(db, burst(5, 30, 9), start) is None
        # Forty minutes after it ended: still the same.
        assert alerts._record(db, burst(70, 75, 6), start) is None
        # More than an hour after the last one ended: a new alert.
        assert alerts._record(db, burst(200, 210, 6), start) is not None
    assert sorted(a.count for a in _alerts(engine)) == [6, 9]

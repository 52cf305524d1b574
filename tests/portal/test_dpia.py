"""docs/dpia.md says what the portal holds and for how long: these tests hold it to the code.

Each statement a test can check is checked here: every table is accounted for, every period and
default is the one the code uses, every setting, file and test it names exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from portal.accounts.sessions import SessionPolicy
from portal.accounts.throttle import ThrottlePolicy
from portal.accounts.users import ENROLMENT_LIFETIME
from portal.schema import tables as schema_tables
from portal.settings import Settings
from portal.uploads.sessions import UPLOAD_TTL

REPO = Path(__file__).resolve().parents[2]
DPIA = (REPO / "docs" / "dpia.md").read_text()
# The audit log's own tables, named in the page as "audit_event and its checkpoints, head and
# epochs": a new one must be added there (and here) by whoever adds it.
AUDIT_FAMILY = {"audit_event", "audit_checkpoint", "audit_head", "audit_pending", "audit_epoch"}


def _named() -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", DPIA))


def test_every_table_is_accounted_for() -> None:
    tables = set(schema_tables())
    audit_tables = {name for name in tables if name.startswith("audit_")}
    assert audit_tables == AUDIT_FAMILY
    assert "audit_event" in _named() and "checkpoints, head and epochs" in DPIA
    missing = sorted(tables - audit_tables - _named())
    assert missing == [], f"tables docs/dpia.md does not account for: {missing}"


def test_every_table_it_names_exists() -> None:
    tables = set(schema_tables())
    table_like = {name for name in _named() if "_" in name or name in {"document", "review"}}
    columns = {c.name for t in schema_tables().values() for c in t.columns}
    not_tables = {name for name in table_like if name not in tables}
    # Backticked words that are columns (review.legal_basis) or settings are fine; nothing else.
    assert not_tables <= columns | {"legal_basis", "retention_days"}, sorted(not_tables - columns)


def test_the_periods_are_the_codes() -> None:
    assert f"default {Settings.audit_retention_days} days" in DPIA
    assert Settings.audit_retention_days == 2192
    assert UPLOAD_TTL.total_seconds() == 24 * 3600 and "24 hours after the last part" in DPIA
    sessions = SessionPolicy()
    assert (
        sessions.idle.total_seconds() == 30 * 60 and sessions.absolute.total_seconds() == 12 * 3600
    )
    assert "30 minutes idle or 12 hours" in DPIA
    assert ENROLMENT_LIFETIME.days == 3 and "enrolment links after 3 days" in DPIA
    throttle = ThrottlePolicy()
    assert throttle.forget_after.total_seconds() == 24 * 3600
    assert "a day after the last failure" in DPIA


def test_every_setting_file_and_test_it_names_exists() -> None:
    settings_source = (REPO / "portal" / "settings.py").read_text()
    for name in set(re.findall(r"PORTAL_[A-Z_]+", DPIA)):
        assert f'"{name}"' in settings_source, name
    for path in set(re.findall(r"`((?:docs|tests)/[\w/.-]+)`", DPIA)):
        assert (REPO / path).exists(), path
    for command in set(re.findall(r"`portal ([a-z]+ ?[a-z]*)", DPIA)):
        assert command.split()[0] in {"audit", "backup", "serve"}, command

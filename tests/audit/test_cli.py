"""``portal audit``: verify (database and offline), export, public key; exit 0, 1 or 2."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlmodel import Session

from audit import SigningKey, checkpoint_line, parse_checkpoint_line
from audit.encoding import checkpoint_message
from audit.tables import event_table
from portal.accounts import users
from portal.accounts.models import Role
from portal.audit_vocabulary import Action
from portal.cli import main
from portal.db import make_engine
from portal.models import OrganisationKind

DPO = "dpo@inspectorate.example"


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """An installation with one DPO, the person the commands act as (PORTAL_OPERATOR)."""
    environ = {"PORTAL_HOME": str(tmp_path / "home"), "PORTAL_DATABASE_URL": database_url}
    result = CliRunner().invoke(main, ["init"], env=environ)
    assert result.exit_code == 0, result.output
    engine = make_engine(database_url)
    with Session(engine) as db:
        now = datetime.now(UTC)
        org = users.add_organisation(
            db,
            slug="inspectorate",
            name="Care Inspectorate",
            kind=OrganisationKind.inspectorate,
            now=now,
        )
        users.add_user(db, email=DPO, role=Role.dpo, organisation=org, now=now)
        db.commit()
    engine.dispose()
    return {**environ, "PORTAL_OPERATOR": DPO}


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", *args], env=env)
    return result.exit_code, result.output


def _actions(url: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as connection:
        found = connection.execute(select(event_table.c.action).order_by("seq")).scalars().all()
    engine.dispose()
    return list(found)


def test_verify_export_and_offline_verify(env: dict[str, str], tmp_path: Path) -> None:
    url = env["PORTAL_DATABASE_URL"]
    code, output = _run(env, "verify")
    assert code == 0, output
    assert "verified the audit log" in output
    assert _actions(url) == [Action.AUDIT_VERIFIED]  # verification is audited

    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"export.{fmt}"
        code, output = _run(env, "export", "--format", fmt, "-o", str(out))
        assert code == 0, output
        assert out.stat().st_mode & 0o077 == 0
    code, _ = _run(
        env,
        "export",
        "--format",
        "jsonl",
        "--action",
        "audit.exported",
        "--since",
        "2000-01-01",
        "-o",
        str(tmp_path / "filtered.jsonl"),
    )
    assert code == 0
    assert _actions(url)[1:] == [Action.AUDIT_EXPORTED] * 3  # export is audited

    key = tmp_path / "audit.pem"
    code, _ = _run(env, "public-key", "-o", str(key))
    assert code == 0 and key.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    for name in ("export.jsonl", "export.csv", "filtered.jsonl"):
        code, output = _run(
            env, "verify", "--export", str(tmp_path / name), "--public-key", str(key)
        )
        assert code == 0, output

    data = bytearray((tmp_path / "export.jsonl").read_bytes())
    at = data.index(b'"user_id":') + len(b'"user_id":')
    data[at] = ord("x")  # the user id's first digit made a letter: an unreadable record
    (tmp_path / "edited.jsonl").write_bytes(bytes(data))
    code, output = _run(
        env, "verify", "--export", str(tmp_path / "edited.jsonl"), "--public-key", str(key)
    )
    assert code == 1
    assert "first broken sequence number 1" in output


def test_verify_names_the_first_broken_sequence(env: dict[str, str]) -> None:
    for processes in ("1", "4", "2"):  # a log this short is walked in one part whatever asked
        assert _run(env, "verify", "--processes", processes)[0] == 0
    engine = make_engine(env["PORTAL_DATABASE_URL"])
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET outcome = 'failure' WHERE seq = 2"))
    engine.dispose()
    code, output = _run(env, "verify")
    assert code == 1
    assert "BROKEN at sequence 2: changed" in output
    assert _actions(env["PORTAL_DATABASE_URL"])[-1] == Action.AUDIT_VERIFIED


def test_usage_errors_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    some_file = tmp_path / "x"
    some_file.write_text("x")
    assert _run(env, "verify", "--export", str(some_file))[0] == 2
    assert _run(env, "verify", "--from", "5", "--to", "2")[0] == 2
    assert _run(env, "verify", "--processes", "0")[0] == 2
    assert _run(env, "export")[0] == 2  # --format is required
    assert _run(env, "export", "--format", "xml")[0] == 2
    assert _run(env, "export", "--format", "csv", "--action", "nope")[0] == 2


def test_dispose_cuts_old_events_and_the_log_still_verifies(
    env: dict[str, str], tmp_path: Path
) -> None:
    url = env["PORTAL_DATABASE_URL"]
    for _ in range(3):
        assert _run(env, "verify")[0] == 0
    code, output = _run(env, "dispose")  # nothing is six years old
    assert code == 0 and "nothing to dispose of" in output, output
    assert (
        _run(env, "export", "--format", "jsonl", "-o", str(tmp_path / "x.jsonl"))[0] == 0
    )  # a checkpoint
    code, output = _run(env, "dispose", "--before", "2999-01-01")
    assert code == 0 and "disposed of" in output, output
    code, output = _run(env, "verify")
    assert code == 0, output
    actions = _actions(url)
    assert Action.AUDIT_VERIFIED not in actions[:1]  # the oldest events are gone
    assert actions[-2:] == [Action.AUDIT_DISPOSED, Action.AUDIT_VERIFIED]
    assert _run(env, "dispose", "--before", "not-a-day")[0] == 2


def test_dispose_refuses_a_tampered_log_and_says_so(env: dict[str, str], tmp_path: Path) -> None:
    url = env["PORTAL_DATABASE_URL"]
    for _ in range(3):
        assert _run(env, "verify")[0] == 0
    assert (
        _run(env, "export", "--format", "jsonl", "-o", str(tmp_path / "x.jsonl"))[0] == 0
    )  # a checkpoint
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET user_id = 99 WHERE seq = 2"))
    engine.dispose()
    code, output = _run(env, "dispose", "--before", "2999-01-01")
    assert code == 1 and "nothing was disposed of" in output and "sequence 2" in output, output
    assert len(_actions(url)) >= 5  # nothing deleted


def test_an_export_into_a_pipe_writes_into_it_and_leaves_it_a_pipe(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Found when the suite, run as root, exported to /dev/null: the export was renamed over it and
    # /dev/null became a regular file of mode 0600, which broke every other program on the machine.
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    code, output = _run(env, "export", "--format", "jsonl", "-o", str(pipe))
    reader.join(timeout=60)
    assert code == 0, output
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert received and received[0].count(b"\n") >= 1
    assert not list(tmp_path.glob(".pipe*"))  # no partial file left beside it


def _cut_back(url: str, seq: int) -> None:
    """The tester's attack (issue 17): everything after ``seq`` gone, the head moved back."""
    engine = make_engine(url)
    with engine.begin() as connection:
        link = connection.execute(
            text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": seq}
        ).scalar_one()
        at_us = connection.execute(
            text("SELECT at_us FROM audit_checkpoint WHERE seq = :s"), {"s": seq}
        ).scalar_one()
        connection.execute(text("DELETE FROM audit_event WHERE seq > :s"), {"s": seq})
        connection.execute(text("DELETE FROM audit_checkpoint WHERE seq > :s"), {"s": seq})
        connection.execute(text("DELETE FROM audit_pending"))
        connection.execute(
            text(
                "UPDATE audit_head SET seq = :s, hash = :h, checkpoint_seq = :s, checkpoint_us = :u"
            ),
            {"s": seq, "h": link, "u": at_us},
        )
    engine.dispose()


def test_verify_compares_with_the_witness_and_prints_a_receipt(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "x.jsonl"
    assert _run(env, "export", "--format", "jsonl", "-o", str(out))[0] == 0  # checkpoint 1
    first_receipt = _run(env, "verify")[1].strip().splitlines()[-1]
    for _ in range(2):
        assert _run(env, "export", "--format", "jsonl", "-o", str(out))[0] == 0  # more checkpoints
    code, output = _run(env, "verify")
    assert code == 0, output
    witness = Path(env["PORTAL_HOME"]) / "witness" / "audit.jsonl"
    assert f"by the witness file {witness}" in output
    receipt = tmp_path / "receipt.jsonl"
    receipt.write_text(output.strip().splitlines()[-1] + "\n")
    assert '"format":"audit-witness/1"' in receipt.read_text()
    assert receipt.read_text().strip() != first_receipt
    witnessed = int(json.loads(receipt.read_text())["seq"])

    # Cut back to the first checkpoint: the witness finds it, by the witnessed sequence number.
    _cut_back(env["PORTAL_DATABASE_URL"], 1)
    code, output = _run(env, "verify")
    assert code == 1, output
    assert "rolled_back" in output and f"checkpoints up to {witnessed}" in output
    # An older witness file put back as well: the DPO's receipt still finds the cut.
    witness.write_text(first_receipt + "\n")
    assert _run(env, "verify")[0] == 0  # not detected without the receipt (docs say so)
    code, output = _run(env, "verify", "--witness", str(receipt))
    assert code == 1 and "rolled_back" in output, output


def test_an_unreadable_witness_is_a_clear_failure(env: dict[str, str], tmp_path: Path) -> None:
    witness = tmp_path / "w.jsonl"
    witness.write_text("this is not a witness\n")
    code, output = _run({**env, "PORTAL_AUDIT_WITNESS": f"file://{witness}"}, "verify")
    assert code == 1 and "not a witnessed checkpoint" in output, output
    code, output = _run({**env, "PORTAL_AUDIT_WITNESS": "ftp://nowhere"}, "verify")
    assert code == 2 and "PORTAL_AUDIT_WITNESS" in output, output


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_an_export_is_checked_offline_against_the_receipt_a_dpo_kept(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 17: the export carries the latest witnessed checkpoint, and `verify --export
    FILE --witness RECEIPT` checks it offline: 0 verified, 1 broken, 2 bad input."""
    assert _run(env, "verify")[0] == 0  # an event to export
    older = tmp_path / "older.jsonl"
    assert _run(env, "export", "--format", "jsonl", "-o", str(older))[0] == 0
    code, output = _run(env, "verify")
    assert code == 0, output
    first_receipt = _last_line(output)
    for _ in range(2):
        assert _run(env, "export", "--format", "jsonl", "-o", str(tmp_path / "x.jsonl"))[0] == 0
    current = tmp_path / "current.jsonl"
    code, output = _run(env, "export", "--format", "jsonl", "-o", str(current))
    assert code == 0 and "it carries the checkpoint witnessed at" in output, output
    code, output = _run(env, "verify")
    receipt = tmp_path / "receipt.jsonl"
    receipt.write_text(_last_line(output) + "\n")
    witnessed = int(json.loads(receipt.read_text())["seq"])
    assert witnessed > int(json.loads(first_receipt)["seq"])

    code, output = _run(env, "verify", "--export", str(current), "--witness", str(receipt))
    assert code == 0, output
    assert "(carried by the export)" in output and f"the latest at {witnessed}" in output
    assert f"the export carries the checkpoint witnessed at {witnessed}" in output
    key = tmp_path / "audit.pem"
    assert _run(env, "public-key", "-o", str(key))[0] == 0
    witness = Path(env["PORTAL_HOME"]) / "witness" / "audit.jsonl"
    code, output = _run(
        env, "verify", "--export", str(current), "--public-key", str(key), "--witness", str(witness)
    )
    assert code == 0 and "(given)" in output, output
    code, output = _run(env, "verify", "--export", str(current))
    assert code == 0 and "WARNING: checked with the keys the export carries" in output, output

    # An older export shown as the current one: it ends before the receipt.
    code, output = _run(env, "verify", "--export", str(older), "--witness", str(receipt))
    assert code == 1, output
    assert f"BROKEN at sequence {witnessed}: rolled_back" in output
    assert "the export holds events 1 to" in output

    # A truncated export, and one with an event taken out.
    lines = current.read_bytes().splitlines(keepends=True)
    (tmp_path / "cut.jsonl").write_bytes(b"".join(lines[:-3]))
    code, output = _run(env, "verify", "--export", str(tmp_path / "cut.jsonl"))
    assert code == 1 and "BROKEN at sequence" in output, output
    gone = [line for line in lines if b'"type":"event"' not in line or b'"seq":2,' not in line]
    assert len(gone) == len(lines) - 1
    (tmp_path / "gone.jsonl").write_bytes(b"".join(gone))
    code, output = _run(env, "verify", "--export", str(tmp_path / "gone.jsonl"))
    assert code == 1 and "BROKEN at sequence 2: deleted" in output, output

    # Bad input, exit 2: a garbled receipt, a file that is not an export.
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text(receipt.read_text()[:40] + "\n")
    code, output = _run(env, "verify", "--export", str(current), "--witness", str(garbled))
    assert code == 2 and "not a receipt" in output, output
    code, output = _run(env, "verify", "--export", str(receipt))
    assert code == 2 and "not an audit export" in output, output

    # A receipt of another installation: signed, by another key.
    other_key = SigningKey.generate()
    ours = parse_checkpoint_line(receipt.read_text(), where="receipt")
    theirs = ours._replace(key_fingerprint=other_key.fingerprint)
    message = checkpoint_message(
        seq=theirs.seq,
        hash_hex=theirs.hash,
        at_us=theirs.at_us,
        every_events=theirs.every_events,
        previous_seq=theirs.previous_seq,
        fingerprint=theirs.key_fingerprint,
    )
    stranger = theirs._replace(signature=other_key.sign(message))
    (tmp_path / "stranger.jsonl").write_text(checkpoint_line(stranger) + "\n")
    code, output = _run(
        env, "verify", "--export", str(current), "--witness", str(tmp_path / "stranger.jsonl")
    )
    assert code == 1 and f"BROKEN at sequence {witnessed}: bad_signature" in output, output
    assert "another log" in output


def test_an_export_of_a_cut_back_log_fails_offline(env: dict[str, str], tmp_path: Path) -> None:
    """The tester's cut-back, then an export: it carries the witness's line and fails alone;
    with an older witness file put back too, the DPO's receipt still finds it."""
    assert _run(env, "verify")[0] == 0  # an event to export
    assert _run(env, "export", "--format", "jsonl", "-o", str(tmp_path / "x.jsonl"))[0] == 0
    first_receipt = _last_line(_run(env, "verify")[1])
    for _ in range(2):
        assert _run(env, "export", "--format", "jsonl", "-o", str(tmp_path / "x.jsonl"))[0] == 0
    receipt = tmp_path / "receipt.jsonl"
    receipt.write_text(_last_line(_run(env, "verify")[1]) + "\n")
    witnessed = int(json.loads(receipt.read_text())["seq"])
    cut_to = int(json.loads(first_receipt)["seq"])
    _cut_back(env["PORTAL_DATABASE_URL"], cut_to)

    export = tmp_path / "cut-back.jsonl"
    code, output = _run(env, "export", "--format", "jsonl", "-o", str(export))
    assert code == 0 and "WARNING: the database contradicts the witness" in output, output
    code, output = _run(env, "verify", "--export", str(export))
    assert code == 1, output
    assert f"BROKEN at sequence {witnessed}: rolled_back" in output
    assert "the witness line the export carries" in output

    witness = Path(env["PORTAL_HOME"]) / "witness" / "audit.jsonl"
    witness.write_text(first_receipt + "\n")  # the attacker's older witness file
    code, output = _run(env, "export", "--format", "jsonl", "-o", str(export))
    assert code == 0, output
    assert _run(env, "verify", "--export", str(export))[0] == 0  # not detected: docs say so
    code, output = _run(env, "verify", "--export", str(export), "--witness", str(receipt))
    assert code == 1, output
    assert f"BROKEN at sequence {witnessed}: rolled_back" in output
    assert "the export holds events 1 to" in output


def test_a_head_moved_back_is_reported_although_the_append_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The head moved back onto events still there: the verification's own event cannot be
    chained (its sequence number is taken), yet the finding is reported, exit 1, and the event
    kept pending rather than lost."""
    for _ in range(3):
        assert _run(env, "verify")[0] == 0
    engine = make_engine(env["PORTAL_DATABASE_URL"])
    with engine.begin() as connection:
        link = connection.execute(text("SELECT hash FROM audit_event WHERE seq = 2")).scalar()
        connection.execute(text("UPDATE audit_head SET seq = 2, hash = :h"), {"h": link})
    code, output = _run(env, "verify")
    assert code == 1 and "BROKEN at sequence 3: inserted" in output, output
    with engine.connect() as connection:
        pending = connection.execute(text("SELECT count(*) FROM audit_pending")).scalar()
    assert pending == 1
    # Found: an export of that log crashed (a traceback) once the log refused its event. It is
    # refused with exit 1 and a pointer to the verification; its attempt is kept pending too.
    code, output = _run(env, "export", "--format", "jsonl", "-o", str(tmp_path / "out.jsonl"))
    assert code == 1 and "does not verify" in output, output
    assert "Traceback" not in output
    with engine.connect() as connection:
        actions = connection.execute(text("SELECT action, outcome FROM audit_pending")).all()
    engine.dispose()
    assert ("audit.exported", "failure") in [tuple(row) for row in actions]

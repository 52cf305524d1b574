"""A real certificate checked by a verifier written from docs/destruction.md alone
(tests/portal/destruction/independent_verifier.py: ``cryptography``, ``hashlib``, ``json``, ``base64``, nothing
from the portal), and by the portal's own ``portal certificate verify``: both accept it, both
refuse it tampered (SQLite and PostgreSQL)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from portal.cli import main
from portal.runtime import build_runtime
from portal.worker import Worker
from tests.portal.conftest import Exchange, cheap_hasher
from tests.portal.destruction import independent_verifier

VERIFIER = Path(independent_verifier.__file__)
ALLOWED = {"__future__", "base64", "hashlib", "json", "sys", "typing", "cryptography"}
BODY = b"Minutes of the case conference.\nPresent: social worker, team lead.\n" * 30


def _env(exchange: Exchange) -> dict[str, str | None]:
    settings = exchange.world.settings
    return {
        "PORTAL_HOME": str(settings.home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_CLAMD": str(settings.clamd),
        "PORTAL_OPERATOR": exchange.world.people["dpo"].email,  # exports are audited
    }


def portal(exchange: Exchange, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=_env(exchange))


def test_the_independent_verifier_imports_nothing_of_the_portal() -> None:
    tree = ast.parse(VERIFIER.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED, imported - ALLOWED


@pytest.fixture
def exported(exchange: Exchange, tmp_path: Path) -> tuple[Path, Path]:
    """A documents-only certificate (one document held) exported, and the public key (PEM)."""
    world, client, tokens = exchange.world, exchange.client, exchange.tokens
    kept, _ = (exchange.upload("uploader", BODY).json()["reference"] for _ in range(2))
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    worker.run_round(force=True)
    held = client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "document": kept, "reason": "legal"},
        headers=tokens["dpo"],
    )
    assert held.status_code == 201, held.text
    assert client.post("/api/v1/reviews/SWG24/close", headers=tokens["lead"], json={}).is_success
    world.clock.advance(days=91)
    [reference] = worker.run_round().destruction.report.certificates
    certificate, key = tmp_path / "certificate.json", tmp_path / "portal-public-key.pem"
    assert (
        portal(exchange, "certificate", "export", reference, "-o", str(certificate)).exit_code == 0
    )
    assert portal(exchange, "audit", "public-key", "-o", str(key)).exit_code == 0
    return certificate, key


def _independent(certificate: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(VERIFIER), str(certificate), str(key)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tampered(data: bytes) -> dict[str, bytes]:
    envelope = json.loads(data)
    claimed = json.loads(data)
    # The finding itself, forged: a documents-only run made to claim the key was erased,
    # re-encoded canonically so that only the signature can tell.
    claimed["certificate"]["review_key"]["state"] = "erased"
    resized = json.loads(data)
    resized["certificate"]["documents"][0]["size"] += 1
    signature = envelope["signature"]
    flipped = dict(envelope, signature=("0" if signature[0] != "0" else "1") + signature[1:])
    return {
        "key claimed erased": independent_verifier.canonical(claimed) + b"\n",
        "a size changed": independent_verifier.canonical(resized) + b"\n",
        "signature changed": independent_verifier.canonical(flipped) + b"\n",
        "re-indented": json.dumps(envelope, indent=2).encode(),
        "one byte flipped": data[:40] + bytes([data[40] ^ 0x01]) + data[41:],
    }


def test_a_real_certificate_verifies_independently_and_tampered_ones_do_not(
    exchange: Exchange, exported: tuple[Path, Path], tmp_path: Path
) -> None:
    certificate, key = exported
    done = _independent(certificate, key)
    assert done.returncode == 0 and done.stdout.startswith("valid:"), done.stdout + done.stderr
    content = independent_verifier.verify(certificate.read_bytes(), key.read_bytes())
    assert content["review_key"]["state"] == "retained"  # what the run did, as signed

    ours = portal(exchange, "certificate", "verify", str(certificate), "--public-key", str(key))
    assert ours.exit_code == 0, ours.output
    assert "1 document(s)" in ours.output and "1 kept, review key retained" in ours.output

    forged = tmp_path / "forged.json"
    for what, data in _tampered(certificate.read_bytes()).items():
        forged.write_bytes(data)
        refused = _independent(forged, key)
        assert refused.returncode == 1 and "INVALID" in refused.stdout, (what, refused.stdout)
        with pytest.raises(independent_verifier.Invalid):
            independent_verifier.verify(data, key.read_bytes())
        theirs = portal(exchange, "certificate", "verify", str(forged), "--public-key", str(key))
        assert theirs.exit_code == 1 and "INVALID" in theirs.output, (what, theirs.output)

    # Another key: both refuse.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert _independent(certificate, other).returncode == 1
    wrong = portal(exchange, "certificate", "verify", str(certificate), "--public-key", str(other))
    assert wrong.exit_code == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_another_machine_verify_says_which_key_file_to_ask_for(
    exchange: Exchange, exported: tuple[Path, Path], tmp_path: Path
) -> None:
    """Issue 18, item 8: the auditor's machine has no portal; it was told to run `portal init`."""
    certificate, key = exported
    fingerprint = json.loads(certificate.read_bytes())["public_key_fingerprint"]
    elsewhere = tmp_path / "auditors-laptop"
    elsewhere.mkdir()
    env = {"PORTAL_HOME": str(elsewhere / "var"), "PORTAL_DATABASE_URL": None}
    answer = CliRunner().invoke(main, ["certificate", "verify", str(certificate)], env=env)
    assert answer.exit_code == 2
    assert f"the key whose fingerprint is {fingerprint}" in answer.output
    assert "--public-key" in answer.output and "portal audit public-key" in answer.output
    assert "portal init" not in answer.output
    assert list(elsewhere.iterdir()) == []  # looking created no database there
    # The operator's `portal audit public-key` names the same fingerprint to compare.
    told = CliRunner().invoke(main, ["audit", "public-key"], env=_env(exchange))
    assert f"fingerprint (SHA-256) {fingerprint}" in told.stderr
    checked = CliRunner().invoke(
        main, ["certificate", "verify", str(certificate), "--public-key", str(key)], env=env
    )
    assert checked.exit_code == 0 and checked.output.startswith("valid:"), checked.output

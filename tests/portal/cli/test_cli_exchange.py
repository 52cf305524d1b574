"""``portal review``, ``portal request`` and ``portal download`` through the real command.

Review and request commands run against the test database (SQLite and PostgreSQL); ``download`` runs
against the portal served by uvicorn on a loopback port. The one fake is a tiny server that lies about
what it sends: a real portal cannot be made to send bytes that differ from its own Repr-Digest.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import audit
from portal.blobs import open_vault
from portal.clamd_local import EICAR
from portal.cli import main
from portal.cli.download import local_file_name
from portal.db import make_engine
from portal.exchange.models import Review, ReviewMember, ReviewOrganisation
from portal.references import new_reference
from portal.web.app import create_app
from tests.harness.ports import free_port
from tests.harness.serving import serving
from tests.portal.conftest import Exchange, World, cheap_hasher

REPO = Path(__file__).resolve().parents[3]
MINUTES = b"Minutes of the case conference.\nPresent: social worker, team lead.\n" * 400


@pytest.fixture
def env(world: World) -> dict[str, str]:
    """The environment that gives the command the test's settings (database, keys, clamd), and
    the operator's configured identity: the administrator."""
    return {
        "PORTAL_HOME": str(world.settings.home),
        "PORTAL_DATABASE_URL": world.settings.database_url,
        "PORTAL_CLAMD": str(world.settings.clamd),
        "PORTAL_OPERATOR": world.people["admin"].email,
    }


def portal(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def create_args(code: str = "SWG25", **changes: Any) -> list[str]:
    options: dict[str, Any] = {
        "--title": "Looked-after children: transitions",
        "--legal-basis": "Public Services Reform (Scotland) Act 2010, section 53",
        "--lead": "lead@inspectorate.example",
        "--org": ["aberdeen-city", "dundee-city"],
        "--member": ["inspector@inspectorate.example"],
        "--opens": "2026-11-01",
        "--closes": "2027-01-31",
        "--retention-days": "90",
    }
    options.update(changes)
    args = ["review", "create", code]
    for name, value in options.items():
        for one in value if isinstance(value, list) else [value]:
            args += [name, one]
    return args


def cli_events(world: World, review: str) -> list[str]:
    engine = make_engine(world.settings.database_url)
    try:
        with engine.connect() as connection:
            page = audit.search(connection, audit.EventFilter(review=review), limit=100)
    finally:
        engine.dispose()
    # A named person, never an anonymous ``cli`` (issue 16).
    admin = world.people["admin"]
    assert all((r.actor.user_id, r.actor.role) == (admin.user_id, "admin") for r in page.records)
    return sorted(r.action for r in page.records)


def review_row(world: World, code: str) -> tuple[Review | None, int, int]:
    engine = make_engine(world.settings.database_url)
    try:
        with Session(engine) as db:
            review = db.exec(select(Review).where(Review.code == code)).first()
            if review is None:
                return None, 0, 0
            members = len(
                db.exec(select(ReviewMember).where(ReviewMember.review_id == review.id)).all()
            )
            orgs = len(
                db.exec(
                    select(ReviewOrganisation).where(ReviewOrganisation.review_id == review.id)
                ).all()
            )
            return review, members, orgs
    finally:
        engine.dispose()


# --- review and request -------------------------------------------------------------------------


def test_a_review_from_creation_to_closing(world: World, env: dict[str, str]) -> None:
    created = portal(env, *create_args("swg25"), "--json")
    assert created.exit_code == 0, created.output
    body = json.loads(created.output)
    assert body["code"] == "SWG25" and body["state"] == "draft"
    assert body["organisations"] == ["aberdeen-city", "dundee-city"]
    assert body["destroy_on"] == "2027-05-01"
    review, members, orgs = review_row(world, "SWG25")
    assert review is not None and (members, orgs) == (2, 2)
    # The review's key is in the key store: a document key can be issued under it.
    open_vault(world.settings).issue_document_key(review="SWG25", document_id=new_reference())

    opened = portal(env, "review", "open", "SWG25")
    assert opened.exit_code == 0 and "open for uploads until 31 January 2027" in opened.output
    asked = portal(
        env, "request", "create", "SWG25", "--org", "Aberdeen-City", "--title", "Records of the 5",
        "--instructions", "Case files, last 12 months.", "--due", "2026-12-15", "--expected", "5",
        "--json",
    )  # fmt: skip
    assert asked.exit_code == 0, asked.output
    request = json.loads(asked.output)
    assert request["organisation"] == "aberdeen-city"
    assert (request["expected"], request["received"], request["due_on"]) == (5, 0, "2026-12-15")

    listed = json.loads(portal(env, "review", "list", "--json").output)["items"]
    assert [(r["code"], r["state"]) for r in listed] == [("SWG25", "open")]
    table = portal(env, "review", "list").output
    assert table.splitlines()[0].split()[:3] == ["CODE", "STATE", "OPENS"]
    assert "SWG25" in table and "Looked-after children" in table

    closed = portal(env, "review", "close", "SWG25", "--json")
    assert closed.exit_code == 0, closed.output
    today = datetime.now(UTC).date()
    assert json.loads(closed.output)["closes_on"] == today.isoformat()  # closed early: moved
    assert json.loads(closed.output)["destroy_on"] == (today + timedelta(days=90)).isoformat()
    again = portal(env, "review", "close", "SWG25")
    assert again.exit_code == 2 and "already closed" in again.output
    reopen = portal(env, "review", "open", "SWG25")
    assert reopen.exit_code == 2 and "only a draft can be opened" in reopen.output

    assert cli_events(world, "SWG25") == sorted(
        [
            "review.created",
            "review.organisation_added",
            "review.organisation_added",
            "review.member_added",
            "review.opened",
            "request.created",
            "review.closed",
        ]
    )


def test_open_at_creation_and_an_empty_list(env: dict[str, str]) -> None:
    empty = portal(env, "review", "list")
    assert empty.exit_code == 0 and "No reviews yet" in empty.output
    assert json.loads(portal(env, "review", "list", "--json").output) == {"items": []}
    created = portal(env, *create_args("SWG26", **{"--member": []}), "--open")
    assert created.exit_code == 0, created.output
    assert "Created review SWG26 (open)" in created.output


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"code": "SW G24"}, "is not valid"),
        ({"code": "../KEYS"}, "is not valid"),
        ({"--opens": "2027-02-01"}, "closing date must be on or after"),
        ({"--lead": "nobody@inspectorate.example"}, "no user with that email"),
        ({"--lead": "uploader@aberdeen.example"}, "role lead"),
        ({"--org": ["aberdeen-city", "no-such-council"]}, "no organisation with the code"),
        ({"--org": ["inspectorate"]}, "Only authorities"),
        ({"--member": ["uploader@dundee.example"]}, "Only active inspectors and leads"),
        ({"--retention-days": "-1"}, "0 to 3650 days"),
        ({"--title": "   "}, "1 to 200 characters"),
        ({"--closes": "31/01/2027"}, "'31/01/2027' does not match"),
    ],
)
def test_a_refused_review_exits_2_and_leaves_nothing(
    world: World, env: dict[str, str], changes: dict[str, Any], message: str
) -> None:
    options = dict(changes)  # the parameters are shared by the SQLite and PostgreSQL runs
    code = options.pop("code", "SWG27")
    result = portal(env, *create_args(code, **options))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert json.loads(portal(env, "review", "list", "--json").output) == {"items": []}
    assert cli_events(world, code.upper()) == []
    # No key either: it is created only once every step has passed.
    assert not any((world.settings.key_dir / "vault").rglob(f"*{code.upper()}*"))


def test_a_code_cannot_be_used_twice(env: dict[str, str]) -> None:
    assert portal(env, *create_args("SWG28")).exit_code == 0
    again = portal(env, *create_args("swg28"))
    assert again.exit_code == 2 and "already a review with the code SWG28" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "aberdeen-city", "--title", "x", "--due", "2026-12-01"], "no review with"),
        (["--org", "nowhere", "--title", "x", "--due", "2026-12-01"], "no organisation"),
        (["--org", "dundee-city", "--title", "x", "--due", "2026-12-01"], "Add the organisation"),
        (["--org", "aberdeen-city", "--title", " ", "--due", "2026-12-01"], "1 to 200 characters"),
        (["--org", "aberdeen-city", "--title", "x", "--due", "soon"], "'soon' does not match"),
        (
            ["--org", "aberdeen-city", "--title", "x", "--due", "2026-12-01", "--expected", "-3"],
            "between 0 and 100,000",
        ),
    ],
)
def test_a_refused_request_exits_2(env: dict[str, str], args: list[str], message: str) -> None:
    created = portal(env, *create_args("SWG29", **{"--org": ["aberdeen-city"]}))
    assert created.exit_code == 0, created.output
    code = "NOSUCH" if message == "no review with" else "SWG29"
    result = portal(env, "request", "create", code, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_without_init_the_command_says_so(tmp_path: Path) -> None:
    result = portal({"PORTAL_HOME": str(tmp_path / "empty")}, "review", "list")
    assert result.exit_code == 2 and "portal init" in result.output


# --- download -----------------------------------------------------------------------------------


@pytest.fixture
def live_url(exchange: Exchange) -> Iterator[str]:
    """The portal of ``exchange`` (same database, keys and clock), served on a loopback port."""
    app = create_app(
        exchange.world.settings, clock=exchange.world.clock, password_hasher=cheap_hasher()
    )
    with serving(app) as url:
        yield url


def token_file(exchange: Exchange, who: str, folder: Path) -> Path:
    path = folder / f"{who}.token"
    path.write_text(exchange.tokens[who]["Authorization"].removeprefix("Bearer ") + "\n")
    path.chmod(0o600)
    return path


def uploaded(exchange: Exchange, body: bytes, name: str) -> str:
    response = exchange.upload("uploader", body, name)
    assert response.status_code == 201, response.text
    reference = response.json()["reference"]
    meta = exchange.client.get(
        f"/api/v1/documents/{reference}", headers=exchange.tokens["inspector"]
    )
    assert meta.json()["state"] == "available", meta.text
    return str(reference)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder of the command: an empty one."""
    here = tmp_path / "downloads"
    here.mkdir()
    monkeypatch.chdir(here)
    return here


def download(url: str, token: Path | None, *args: str, env: dict[str, str] | None = None) -> Result:
    options = ["download", *args, "--url", url] + (["--token-file", str(token)] if token else [])
    return CliRunner().invoke(main, options, env={"PORTAL_TOKEN": None, **(env or {})})


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".portal-download-"))


def test_download_saves_the_exact_bytes_privately(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    reference = uploaded(exchange, MINUTES, "Case conference — 3 March.txt")
    result = download(
        live_url, token_file(exchange, "inspector", tmp_path), reference.lower(), "--json"
    )
    assert result.exit_code == 0, result.output
    saved = folder / "Case conference — 3 March.txt"
    assert saved.read_bytes() == MINUTES
    assert saved.stat().st_mode & 0o777 == 0o600
    body = json.loads(result.output)
    assert body["sha256"] == hashlib.sha256(MINUTES).hexdigest() and body["size"] == len(MINUTES)
    assert body["path"] == str(saved)
    assert leftovers(folder) == []


def test_download_with_the_token_in_the_environment_and_output_paths(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    reference = uploaded(exchange, MINUTES, "minutes.txt")
    raw = token_file(exchange, "lead", tmp_path).read_text().strip()
    into_file = download(live_url, None, reference, "-o", "copy.txt", env={"PORTAL_TOKEN": raw})
    assert into_file.exit_code == 0, into_file.output
    assert (folder / "copy.txt").read_bytes() == MINUTES
    (folder / "sub").mkdir()
    into_dir = download(live_url, None, reference, "-o", "sub", env={"PORTAL_TOKEN": raw})
    assert into_dir.exit_code == 0, into_dir.output
    assert (folder / "sub" / "minutes.txt").read_bytes() == MINUTES


def test_a_hostile_file_name_is_saved_in_the_current_folder(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    reference = uploaded(exchange, MINUTES, "../../x")
    result = download(live_url, token_file(exchange, "inspector", tmp_path), reference)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["x.txt"]
    assert not (tmp_path / "x.txt").exists() and not (tmp_path.parent / "x.txt").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # names, scans: no SQL
def test_the_saved_extension_is_the_types_not_the_senders(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    # Issue 18, item 1: text sent as run-me.bat must not land as a batch file.
    batch = b"@echo off\r\nrem Minutes of the case conference\r\nstart calc.exe\r\n"
    token = token_file(exchange, "inspector", tmp_path)
    for name in ("run-me.bat", "notes.hta", "page.html"):
        reference = uploaded(exchange, batch, name)
        result = download(live_url, token, reference)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "page.txt", "run-me.txt"]


@pytest.mark.parametrize(
    ("server_name", "media_type", "saved_as"),
    [
        ("../../x", "text/plain", "x.txt"),
        ("..", "text/plain", "REF.txt"),
        ("/etc/cron.d/evil", "text/plain; charset=utf-8", "evil.txt"),
        ("C:\\Windows\\evil.exe", "application/pdf", "evil.pdf"),
        (".bashrc", "text/plain", "bashrc.txt"),
        ("...", "text/plain", "REF.txt"),
        ("notes\x00.txt\n", "text/plain", "notes.txt"),
        (None, "application/pdf", "REF.pdf"),
        ("a" * 300 + ".pdf", "application/pdf", "a" * 196 + ".pdf"),
        ("é" * 150 + ".pdf", "application/pdf", "é" * 98 + ".pdf"),
        # The server (or the sender behind it) never chooses the extension (issue 18).
        ("run-me.bat", "text/plain", "run-me.txt"),
        ("run-me.bat", "application/x-msdownload", "run-me.bin"),
        ("figures.exe.csv", "text/csv", "figures_exe.csv"),
        ("page.html", "", "page.bin"),
    ],
)
def test_local_file_names_are_never_paths(
    server_name: str | None, media_type: str, saved_as: str
) -> None:
    name = local_file_name(server_name, "ABCD-EFGH-JKMN-P", media_type)
    assert name == saved_as.replace("REF", "ABCD-EFGH-JKMN-P")
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert len(name.encode()) <= 200


def test_an_existing_file_is_kept_unless_forced(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    reference = uploaded(exchange, MINUTES, "minutes.txt")
    token = token_file(exchange, "inspector", tmp_path)
    (folder / "minutes.txt").write_bytes(b"my own notes")
    refused = download(live_url, token, reference)
    assert refused.exit_code == 2 and "--force" in refused.output
    assert (folder / "minutes.txt").read_bytes() == b"my own notes"
    refused_o = download(live_url, token, reference, "-o", "minutes.txt")
    assert refused_o.exit_code == 2
    assert (folder / "minutes.txt").read_bytes() == b"my own notes"
    forced = download(live_url, token, reference, "--force")
    assert forced.exit_code == 0, forced.output
    assert (folder / "minutes.txt").read_bytes() == MINUTES
    assert leftovers(folder) == []


def test_a_pipe_in_the_way_is_never_replaced(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    # Renaming a download over a device or a pipe replaces it: as root, over /dev/null, that turns
    # /dev/null into a regular file for every program on the machine.
    reference = uploaded(exchange, MINUTES, "minutes.txt")
    token = token_file(exchange, "inspector", tmp_path)
    os.mkfifo(folder / "minutes.txt")
    refused = download(live_url, token, reference, "--force")
    assert refused.exit_code == 2 and "not a regular file" in refused.output
    assert stat.S_ISFIFO((folder / "minutes.txt").stat().st_mode)
    assert leftovers(folder) == []


def test_download_errors_and_their_exit_codes(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    reference = uploaded(exchange, MINUTES, "minutes.txt")
    inspector = token_file(exchange, "inspector", tmp_path)
    typo = reference[:-1] + ("0" if reference[-1] != "0" else "1")
    mistyped = download(live_url, inspector, typo)
    assert mistyped.exit_code == 2 and "not a valid document reference" in mistyped.output
    missing = download(live_url, inspector, new_reference())
    assert missing.exit_code == 1 and "nothing with that reference" in missing.output
    # An uploader never reads content: to them the document is not there.
    uploader = download(live_url, token_file(exchange, "uploader", tmp_path), reference)
    assert uploader.exit_code == 1 and "There is nothing" in uploader.output
    (tmp_path / "bad.token").write_text("pt_not-a-real-token")
    bad = download(live_url, tmp_path / "bad.token", reference)
    assert bad.exit_code == 2 and "not valid" in bad.output
    nothing = download(live_url, None, reference)
    assert nothing.exit_code == 2 and "PORTAL_TOKEN" in nothing.output
    # A path in the "reference" stays inside the one route.
    sneaky = download(live_url, inspector, "../reviews/SWG24")
    assert sneaky.exit_code in (1, 2) and not list(folder.iterdir())
    unreachable = download(f"http://127.0.0.1:{free_port()}", inspector, reference)
    assert unreachable.exit_code == 1 and "Nothing was saved" in unreachable.output
    assert list(folder.iterdir()) == []


# The one fake: a server whose bytes do not match what it announces (a corrupted transfer, a
# tampering proxy), which the real portal cannot be made to do.
GOOD = b"the bytes the portal recorded at upload\n" * 100
DIGEST = "sha-256=:" + base64.b64encode(hashlib.sha256(GOOD).digest()).decode() + ":"


def _liar(request: Request) -> Response:
    how = request.path_params["ref"]
    data = GOOD.replace(b"portal", b"PORTAL") if how == "ALTERED" else GOOD
    headers = {
        "Content-Disposition": "attachment; filename*=UTF-8''minutes.txt",
        "Content-Length": str(len(data)),
    }
    if how != "NODIGEST":
        headers["Repr-Digest"] = DIGEST
    return Response(data, headers=headers, media_type="text/plain")


@pytest.fixture
def liar_url() -> Iterator[str]:
    with serving(Starlette(routes=[Route("/api/v1/documents/{ref}/content", _liar)])) as url:
        yield url


@pytest.mark.parametrize(
    ("ref", "message"),
    [("ALTERED", "does not match"), ("NODIGEST", "no SHA-256 Repr-Digest")],
)
def test_a_transfer_that_does_not_match_is_not_saved(
    liar_url: str, folder: Path, tmp_path: Path, ref: str, message: str
) -> None:
    (tmp_path / "t").write_text("pt_whatever")
    result = download(liar_url, tmp_path / "t", ref)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert list(folder.iterdir()) == []
    good = download(liar_url, tmp_path / "t", "GOOD")
    assert good.exit_code == 0 and (folder / "minutes.txt").read_bytes() == GOOD


# --- the benchmark ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_upload_benchmark_runs_in_its_quick_mode(tmp_path: Path) -> None:
    try:
        import copyparty  # noqa: F401
    except ImportError:
        pytest.fail("bench/upload.py compares with copyparty: pip install copyparty")
    output = tmp_path / "upload.json"
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "upload.py"), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=280,  # pytest-timeout stops the test at 300 s
        env={k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads(output.read_text())
    assert set(results["variants"]) == {"default_malloc", "tuned_malloc"}
    for variant in results["variants"].values():
        assert variant["upload"]["portal_mb_s"] > 0 and variant["download"]["ratio_vs_bare"] > 0
        assert variant["concurrent"]["errors"] == 0
        bound = variant["cpu_bound"]
        parts = bound["necessary_cpu_s"]
        assert set(parts) == {"receive", "send", "sha256", "aes_gcm", "page_cache_write"}
        assert all(seconds > 0 for seconds in parts.values())
        assert bound["necessary_total_cpu_s"] == pytest.approx(sum(parts.values()), abs=0.002)
        assert bound["half_the_sink_reachable"] == (
            bound["necessary_total_cpu_s"] <= bound["available_cpu_s_at_half_the_sink"]
        )
        assert bound["portal_upload_cpu_s"]["server"] > 0


def test_the_upload_benchmark_judges_the_figures_it_reports() -> None:
    """The CPU-bound verdict follows from the rounded figures in the JSON, not unrounded ones.

    Found in a fresh clone: 0.2064 CPU s needed against 0.2058 available were both reported as
    0.206 while the verdict said "beyond", so a reader of the JSON (and the test above) saw a
    verdict that did not follow from the figures.
    """
    spec = importlib.util.spec_from_file_location("bench_upload", REPO / "bench" / "upload.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(bench)
    finally:
        del sys.modules[spec.name]
    cpus = os.cpu_count() or 1
    bare_s = 0.2058 / (cpus * 2)
    bound = bench.cpu_bound(
        {"sha256": 0.1, "aes_gcm": 0.0004},
        bare_s,
        [(bare_s, 0.05, 0.05)],
        [0.006],
        [(0.3, 0.2)],
    )
    assert bound["necessary_total_cpu_s"] == bound["available_cpu_s_at_half_the_sink"] == 0.206
    assert bound["half_the_sink_reachable"] is True


# --- What a download that cannot happen says (issue 18, item 8) ---------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rejected_document_is_told_from_one_not_scanned_yet(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    from tests.portal.uploads.test_recovery import pending_document

    pending = pending_document(exchange)  # uploaded while the scanner was down: not scanned yet
    infected = exchange.upload("uploader", EICAR, "notes.txt")
    assert infected.status_code == 201, infected.text
    inspector = token_file(exchange, "inspector", tmp_path)
    rejected = download(live_url, inspector, infected.json()["reference"])
    assert rejected.exit_code == 1
    assert "rejected: infected (Eicar-Test-Signature" in rejected.output
    assert "scanned and found clean" not in rejected.output and "not been scanned" not in (
        rejected.output
    )
    waiting = download(live_url, inspector, pending)
    assert waiting.exit_code == 1
    assert "has not been scanned yet" in waiting.output and "rejected" not in waiting.output
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_not_found_is_said_in_the_commands_words_whichever_layer_refused(
    exchange: Exchange, live_url: str, folder: Path, tmp_path: Path
) -> None:
    from portal.accounts.models import Role
    from tests.portal.conftest import api_token

    reference = uploaded(exchange, MINUTES, "minutes.txt")
    world = exchange.world
    world.people["outsider"] = world.add_person(
        "outsider@inspectorate.example", Role.inspector, "inspectorate"
    )
    exchange.tokens["outsider"] = api_token(world, "outsider")
    # The route's rule refuses a DPO and an uploader; the policy refuses an inspector off the
    # review's team; nothing exists at a new reference. The command says the same to each, and
    # nothing of the web's pages.
    answers = [
        download(live_url, token_file(exchange, "dpo", tmp_path), reference),
        download(live_url, token_file(exchange, "uploader", tmp_path), reference),
        download(live_url, token_file(exchange, "outsider", tmp_path), reference),
        download(live_url, token_file(exchange, "inspector", tmp_path), new_reference()),
    ]
    assert [a.exit_code for a in answers] == [1, 1, 1, 1]
    assert len({a.output for a in answers}) == 1
    assert "home page" not in answers[0].output and "nothing with that reference" in (
        answers[0].output
    )

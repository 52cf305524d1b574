"""Every node uses the installation's one key service, and a node that does not refuses to start.

Found by an operator: a node with a copied key folder answered 500 for every review created after
the copy while /readyz said 200, and still opened a review another node had destroyed; a node that
ran `portal init` on an empty key folder minted a second signing key, master key and form-token key
against the shared database, then failed sign-ins and reported the audit log broken.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select
from starlette.testclient import TestClient

from portal.blobs import open_keys, open_vault
from portal.cli import main
from portal.db import make_engine
from portal.exchange.models import Review, ReviewState
from portal.keys import KeyServiceRefused
from portal.settings import Settings
from portal.web.app import create_app
from storage import FolderKeyService
from tests.harness.softhsm import SoftHsm
from tests.portal.cli.test_cli_exchange import create_args
from tests.portal.conftest import Exchange, World, api_token

KEY_FILE_SUFFIXES = {".pem", ".key", ".json"}


def _env(settings: Settings, home: Path, **more: str) -> dict[str, str]:
    return {
        "PORTAL_HOME": str(home),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_CLAMD": str(settings.clamd),
        **more,
    }


def portal(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def _key_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix in KEY_FILE_SUFFIXES]


def _installation_id(world: World) -> str:
    found = open_keys(world.settings).installation()
    assert found is not None
    return found.id


def test_a_node_with_an_empty_key_folder_refuses_and_makes_no_keys(
    world: World, tmp_path: Path
) -> None:
    env = _env(world.settings, tmp_path / "node-b")
    for command in (["init"], ["worker", "--once"], ["serve"], ["review", "list"]):
        result = portal(env, *command)
        assert result.exit_code == 1, (command, result.output)
        assert "holds no keys" in result.output and _installation_id(world) in result.output
        assert "Traceback" not in result.output
    assert _key_files(tmp_path / "node-b") == []
    checked = portal(env, "check")
    assert checked.exit_code == 1 and "FAIL keys" in checked.output
    with pytest.raises(KeyServiceRefused):
        create_app(Settings.from_environ(env))


def test_a_node_with_another_installations_keys_refuses_by_name(
    world: World, tmp_path: Path
) -> None:
    other = {
        "PORTAL_HOME": str(tmp_path / "other"),
        "PORTAL_CLAMD": str(world.settings.clamd),
    }
    assert portal(other, "init").exit_code == 0  # its own installation, its own SQLite
    stranger = open_keys(Settings.from_environ(other)).installation()
    assert stranger is not None
    env = _env(world.settings, tmp_path / "node-b", PORTAL_KEY_DIR=str(tmp_path / "other/keys"))
    result = portal(env, "init")
    assert result.exit_code == 1, result.output
    assert stranger.id in result.output and _installation_id(world) in result.output
    files_before = sorted(p.name for p in _key_files(tmp_path / "other/keys"))
    assert portal(env, "worker", "--once").exit_code == 1
    assert sorted(p.name for p in _key_files(tmp_path / "other/keys")) == files_before


def test_a_copied_key_folder_is_refused_once_the_installation_moves_on(
    world: World, tmp_path: Path
) -> None:
    copy = tmp_path / "copied-keys"
    shutil.copytree(world.settings.key_dir, copy)
    env = _env(world.settings, tmp_path / "node-b", PORTAL_KEY_DIR=str(copy))
    assert portal(env, "init").exit_code == 0  # the same installation, up to date so far
    node_a = _env(world.settings, world.settings.home, PORTAL_OPERATOR=world.people["admin"].email)
    created = portal(node_a, *create_args("NEW24", **{"--org": ["aberdeen-city"]}))
    assert created.exit_code == 0, created.output
    result = portal(env, "worker", "--once")
    assert result.exit_code == 1 and "no key for 1 review(s)" in result.output
    assert "NEW24" in result.output and "copy" in result.output


def test_a_copy_that_still_holds_a_destroyed_review_key_is_refused(
    world: World, tmp_path: Path
) -> None:
    node_a = _env(world.settings, world.settings.home, PORTAL_OPERATOR=world.people["admin"].email)
    assert portal(node_a, *create_args("OLD24", **{"--org": ["aberdeen-city"]})).exit_code == 0
    copy = tmp_path / "copied-keys"
    shutil.copytree(world.settings.key_dir, copy)
    env = _env(world.settings, tmp_path / "node-b", PORTAL_KEY_DIR=str(copy))
    assert portal(env, "init").exit_code == 0
    # Node A destroys the review: its key in the shared service, its state in the database.
    open_vault(world.settings).destroy_review("OLD24")
    engine = make_engine(world.settings.database_url)
    try:
        with Session(engine) as db:
            review = db.exec(select(Review).where(Review.code == "OLD24")).one()
            review.state = ReviewState.destroyed
            db.add(review)
            db.commit()
    finally:
        engine.dispose()
    result = portal(env, "worker", "--once")
    assert result.exit_code == 1 and "destroyed review(s)" in result.output
    assert open_keys(Settings.from_environ(env)).has_review_key("OLD24")  # the copy: refused


def test_nodes_share_one_pkcs11_token(world: World, softhsm: SoftHsm, tmp_path: Path) -> None:
    """Two nodes, each with its own PORTAL_HOME and nothing shared but the database and token."""
    token = softhsm.new_token()
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"
    node_a = {**_env(world.settings, tmp_path / "a", PORTAL_KMS=token)}
    node_b = {**_env(world.settings, tmp_path / "b", PORTAL_KMS=token)}
    node_a["PORTAL_DATABASE_URL"] = node_b["PORTAL_DATABASE_URL"] = db_url
    first = portal(node_a, "init")
    assert first.exit_code == 0 and "created the installation's keys" in first.output
    joined = portal(node_b, "init")
    assert joined.exit_code == 0 and "joined installation" in joined.output, joined.output
    assert "created" not in joined.output.replace("created data directory", "").replace(
        "created blob folder", ""
    )
    assert not (tmp_path / "b" / "keys").exists()  # nothing of the keys on the node
    settings_a, settings_b = Settings.from_environ(node_a), Settings.from_environ(node_b)
    keys_a, keys_b = open_keys(settings_a), open_keys(settings_b)
    assert keys_a.signing_public_key() == keys_b.signing_public_key()
    assert keys_a.secret("web-csrf") == keys_b.secret("web-csrf")
    create_app(settings_b)  # starts: the token holds this database's installation
    # An empty token, or another installation's, is refused by name.
    for stranger in (
        softhsm.new_token(),
        token.replace(token.split("token=")[1].split("?")[0], "x"),
    ):
        result = portal({**node_b, "PORTAL_KMS": stranger}, "init")
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output


def test_a_review_key_missing_under_a_running_node_is_a_clear_503(exchange: Exchange) -> None:
    """The start-up check refuses such a node; a key service changed under a running one gets
    a clear answer, never a 500 and never content."""
    reference = exchange.upload("uploader", b"Assessment notes.\n" * 20).json()["reference"]
    keys = open_keys(exchange.world.settings)
    assert isinstance(keys, FolderKeyService)
    (keys.folder / "vault" / keys.review_keys.key_reference("SWG24")).unlink()
    answer = exchange.client.get(
        f"/api/v1/documents/{reference}/content", headers=exchange.tokens["inspector"]
    )
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "keys_unavailable"
    assert b"Assessment" not in answer.content


def test_readyz_names_a_key_service_that_no_longer_matches(
    client: TestClient, world: World
) -> None:
    admin = api_token(world, "admin")  # the details are for administrators (issue 18)
    ready = client.get("/readyz", headers=admin)
    assert ready.status_code == 200 and ready.json()["checks"]["keys"]["ok"] is True
    check_file = world.settings.key_dir / "installation-check.key"
    check_file.write_bytes(b"\x00" * 32)  # the secrets it derives are no longer the database's
    answer = client.get("/readyz", headers=admin)
    assert answer.status_code == 503
    keys = answer.json()["checks"]["keys"]
    assert keys["ok"] is False and "derives other secrets" in keys["detail"]

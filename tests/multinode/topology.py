"""The multi-node topology the tests in this package run against, all on 127.0.0.1.

::

                        nginx (reverse proxy, one upstream of both nodes)
                          │                       │
    node A: portal serve + portal worker    node B: portal serve + portal worker
            its own PORTAL_HOME                     its own PORTAL_HOME
                          │                       │
      ┌───────────────────┴──┬────────────────────┴┬───────────────────┐
      PostgreSQL             SeaweedFS (S3)         SoftHSM2 token      clamd over TCP
      (one database)         (one bucket, prefix)   (PORTAL_KMS)        (PORTAL_CLAMD)

Every process is a real one (``python -m portal ...`` from this checkout, Debian's nginx), started
with an environment of its own: nothing but the database, the bucket, the token and clamd is
shared. ``start_topology`` starts them all and stops every one of them when its ``ExitStack``
closes, whatever happened in between.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import Engine
from sqlmodel import Session

from portal.accounts import users
from portal.accounts.models import Role
from portal.db import make_engine
from portal.models import OrganisationKind
from portal.settings import Settings
from tests.harness.clamd import TEST_MAX_UPLOAD_BYTES
from tests.harness.database import sqlalchemy_url
from tests.harness.ports import free_port
from tests.harness.waiting import PATIENCE
from tests.portal.conftest import Person, SettableClock, World, api_token

REPO = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"
# Bounded waits for every state a test or the start-up waits for: never a fixed sleep.
WAIT_SECONDS = PATIENCE  # ends as soon as the thing happens (tests/harness/waiting.py)
# The workers look for work every second, so that a test waits seconds, not the default 10 s.
WORKER_INTERVAL = "1"
S3_CREDENTIALS = {
    # What the harness's SeaweedFS accepts (tests/harness/seaweedfs.py).
    "AWS_ACCESS_KEY_ID": "portal-test",
    "AWS_SECRET_ACCESS_KEY": "portal-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}

T = TypeVar("T")


class TopologyError(RuntimeError):
    """A process of the topology did not start, or died, or a wait ran out."""


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = WAIT_SECONDS) -> T:
    """Poll ``probe`` until it returns something other than None, for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TopologyError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)


@dataclass
class Service:
    """One process of the topology, its output in a log file of its own."""

    name: str
    command: list[str]
    env: dict[str, str] = field(repr=False)
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s: nothing is left running."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine loses power."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} is not up"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def tail(self, size: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""


def portal_environment(
    *,
    home: Path,
    database_url: str,
    storage: str,
    s3_endpoint_url: str,
    kms: str,
    clamd: str,
    public_url: str,
) -> dict[str, str]:
    """One node's environment: the shared services, and a PORTAL_HOME of its own."""
    # Nothing of the calling shell's PORTAL_* may leak in (a key folder, another database).
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    return {
        **inherited,
        **S3_CREDENTIALS,
        "PORTAL_HOME": str(home),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_STORAGE": storage,
        "PORTAL_S3_ENDPOINT_URL": s3_endpoint_url,
        "PORTAL_KMS": kms,
        "PORTAL_CLAMD": clamd,
        "PORTAL_MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES),
        "PORTAL_PUBLIC_URL": public_url,
        "PORTAL_LOG_LEVEL": "warning",
        # nginx on the loopback is in front (as deploy/portal.env.example): its header is believed.
        "PORTAL_TRUSTED_PROXIES": "127.0.0.1",
    }


def portal_command(*args: str) -> list[str]:
    # This checkout's portal (python -m puts the working folder, REPO, first on sys.path).
    return [sys.executable, "-m", "portal", *args]


@dataclass
class Node:
    """One machine of the installation: a ``portal serve`` and a ``portal worker``."""

    name: str
    port: int
    env: dict[str, str] = field(repr=False)
    serve: Service
    worker: Service

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return Path(self.env["PORTAL_HOME"])

    @property
    def settings(self) -> Settings:
        return Settings.from_environ(self.env)

    def portal(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A ``portal`` command run on this node, as an operator would."""
        return subprocess.run(
            portal_command(*args),
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wait_ready(self) -> None:
        def ready() -> bool | None:
            if not self.serve.alive:
                raise TopologyError(f"{self.serve.name} exited:\n{self.serve.tail()}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200 or None
            except httpx.TransportError:
                return None

        try:
            wait_for(f"{self.serve.name} ready", ready)
        except TopologyError as exc:
            raise TopologyError(f"{exc}\n{self.serve.tail()}") from None

    def restart(self) -> None:
        """Start this node's web app again (after a kill), and wait until it is ready."""
        self.serve.stop()
        self.serve.start()
        self.wait_ready()


def nginx_config(prefix: Path, *, port: int, upstreams: list[int]) -> str:
    """nginx in front of the nodes, as deploy/nginx.conf is but in plain HTTP on the loopback."""
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    user = ""
    if os.geteuid() == 0:
        # As root the workers switch user; nginx's built-in "nobody nobody" has no group here.
        name = next((n for n in ("www-data", "nobody") if _has_user(n)), "nobody")
        group = next((g for g in (name, "nogroup") if _has_group(g)), "nogroup")
        user = f"user {name} {group};"
    temp = {kind: prefix / kind for kind in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""{user}
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 512; }}
http {{
    access_log {prefix / "access.log"};
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    upstream portal {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        # As deploy/nginx.conf: uploads stream through, nothing is buffered to the proxy's disk.
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        location / {{
            proxy_pass http://portal;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto http;
            proxy_set_header Connection "";
            # Which node answered: the tests check that both took their share.
            add_header X-Portal-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def nginx_service(prefix: Path, *, port: int, upstreams: list[int]) -> Service:
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(prefix, port=port, upstreams=upstreams))
    return Service(
        name="nginx",
        command=[
            *(NGINX, "-p", str(prefix), "-c", str(conf)),
            *("-e", str(prefix / "error.log"), "-g", "daemon off;"),
        ],
        env=dict(os.environ),
        log=prefix / "nginx.stderr",
    )


@dataclass
class Topology:
    """What the tests see: the proxy, the two nodes, the people and their API tokens."""

    proxy_url: str
    nodes: dict[str, Node]
    nginx: Service
    database_url: str
    engine: Engine
    world: World = field(repr=False)
    tokens: dict[str, dict[str, str]] = field(repr=False)  # bearer tokens: kept out of reports
    folder: Path
    init_output: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def a(self) -> Node:
        return self.nodes["a"]

    @property
    def b(self) -> Node:
        return self.nodes["b"]

    @property
    def people(self) -> dict[str, Person]:
        return self.world.people

    def open_review(self, code: str, *, through: str, retention_days: int = 90) -> str:
        """A review opened by the lead through ``through`` (a node's or the proxy's URL): Aberdeen
        takes part, the inspector is on its team."""
        lead = self.tokens["lead"]
        today = datetime.now(UTC).date()
        with httpx.Client(base_url=through, headers=lead, timeout=30) as client:
            created = client.post(
                "/api/v1/reviews",
                json={
                    "code": code,
                    "title": "Multi-node review",
                    "legal_basis": "Public Services Reform (Scotland) Act 2010, section 53",
                    "opens_on": str(today - timedelta(days=1)),
                    "closes_on": str(today + timedelta(days=60)),
                    "retention_days": retention_days,
                    "organisations": ["aberdeen-city"],
                },
            )
            assert created.status_code == 201, created.text
            member = client.post(
                f"/api/v1/reviews/{code}/members", json={"email": self.people["inspector"].email}
            )
            assert member.status_code == 200, member.text
            opened = client.post(f"/api/v1/reviews/{code}/open", json={})
            assert opened.status_code == 200, opened.text
        return code


def new_review_code(prefix: str) -> str:
    """2 to 16 capitals and digits, starting with a letter: unique within the topology."""
    return (prefix + secrets.token_hex(3)).upper()


def _create_database(admin_url: str) -> str:
    name = f"portal_multinode_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _make_people(settings: Settings) -> World:
    """Organisations and people, through the services against the shared database (as World).

    Enrolled 90 s in the past: the code used at enrolment belongs to a time step well before
    now, so a sign-in's code is a fresh one (a code is never accepted twice).
    """
    clock = SettableClock(now=datetime.now(UTC) - timedelta(seconds=90))
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            for slug, name, kind in [
                ("inspectorate", "Care Inspectorate", OrganisationKind.inspectorate),
                ("aberdeen-city", "Aberdeen City Council", OrganisationKind.authority),
            ]:
                users.add_organisation(db, slug=slug, name=name, kind=kind, now=clock())
            db.commit()
    finally:
        engine.dispose()
    world = World(settings=settings, clock=clock, people={})
    for key, email, role, org in [
        ("uploader", "uploader@aberdeen.example", Role.uploader, "aberdeen-city"),
        ("inspector", "inspector@inspectorate.example", Role.inspector, "inspectorate"),
        ("lead", "lead@inspectorate.example", Role.lead, "inspectorate"),
        ("dpo", "dpo@inspectorate.example", Role.dpo, "inspectorate"),  # runs `destroy run`
    ]:
        world.people[key] = world.add_person(email, role, org)
    return world


def _run_init(node: Node) -> str:
    done = node.portal("init", timeout=120)
    if done.returncode != 0:
        raise TopologyError(f"portal init on node {node.name} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def start_topology(
    stack: ExitStack,
    folder: Path,
    *,
    pg_admin_url: str,
    s3_endpoint_url: str,
    s3_bucket: str,
    kms: str,
    clamd: str,
) -> Topology:
    """Start every process of the topology; each is stopped when ``stack`` closes."""
    database = _create_database(pg_admin_url)
    stack.callback(_drop_database, pg_admin_url, database)
    database_url = sqlalchemy_url(pg_admin_url.rsplit("/", 1)[0] + "/" + database)
    proxy_port = free_port()
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    storage = f"s3://{s3_bucket}/multinode-{secrets.token_hex(4)}"
    nodes: dict[str, Node] = {}
    for name in ("a", "b"):
        env = portal_environment(
            home=folder / f"node-{name}",
            database_url=database_url,
            storage=storage,
            s3_endpoint_url=s3_endpoint_url,
            kms=kms,
            clamd=clamd,
            public_url=proxy_url,
        )
        port = free_port()
        logs = folder / "logs"
        logs.mkdir(exist_ok=True)
        nodes[name] = Node(
            name=name,
            port=port,
            env=env,
            serve=Service(
                f"serve-{name}",
                portal_command("serve", "--host", "127.0.0.1", "--port", str(port)),
                env,
                logs / f"serve-{name}.log",
            ),
            worker=Service(
                f"worker-{name}",
                portal_command("worker", "--interval", WORKER_INTERVAL),
                env,
                logs / f"worker-{name}.log",
            ),
        )
    # The first node creates the installation's keys in the token; the second joins it.
    init_output = {"a": _run_init(nodes["a"]), "b": _run_init(nodes["b"])}
    world = _make_people(nodes["a"].settings)
    tokens = {who: api_token(world, who) for who in world.people}
    for node in nodes.values():
        for service in (node.serve, node.worker):
            service.start()
            stack.callback(service.stop)
    nginx = nginx_service(
        folder / "nginx", port=proxy_port, upstreams=[n.port for n in nodes.values()]
    )
    nginx.start()
    stack.callback(nginx.stop)
    for node in nodes.values():
        node.wait_ready()
    _wait_proxy(proxy_url, nginx)
    for node in nodes.values():
        if not node.worker.alive:
            raise TopologyError(f"{node.worker.name} exited:\n{node.worker.tail()}")
    engine = make_engine(database_url)
    stack.callback(engine.dispose)
    return Topology(
        proxy_url=proxy_url,
        nodes=nodes,
        nginx=nginx,
        database_url=database_url,
        engine=engine,
        world=world,
        tokens=tokens,
        folder=folder,
        init_output=init_output,
    )


def _wait_proxy(proxy_url: str, nginx: Service) -> None:
    def answers() -> bool | None:
        if not nginx.alive:
            raise TopologyError(f"nginx exited:\n{nginx.tail()}")
        try:
            return httpx.get(f"{proxy_url}/healthz", timeout=5).status_code == 200 or None
        except httpx.TransportError:
            return None

    try:
        wait_for("nginx answering", answers)
    except TopologyError as exc:
        error_log = Path(nginx.command[nginx.command.index("-e") + 1])
        raise TopologyError(f"{exc}\n{error_log.read_text(errors='replace')[-2000:]}") from None

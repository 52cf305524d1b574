"""Who may call which route: every route declares a rule, and a route without one cannot be built.

Deny by default (the lesson of SecureDrop's decorators and of every file-transfer breach): the only
way to add a route is ``route(path, handler, rule=...)``, the rule is checked before the handler
runs, and a test walks the app's routes against a table of expected answers for every role. An object
or page the caller may not see answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from portal.accounts.models import Role
from portal.errors import NotAllowed, NotFound, PortalError, Unauthenticated
from portal.web import csrf
from portal.web.bodies import (
    FORM_MAX_BYTES,
    JSON_MAX_BYTES,
    BodyLimit,
    Streamed,
    limit_body,
    read_form,
)
from portal.web.principal import Principal, authenticate
from portal.web.requests import is_multipart, is_urlencoded

Handler = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]
# Called (in a worker thread) when the route's rule refuses a signed-in caller's role: audits the
# refusal if the object the path names exists (docs/audit-format.md, "Refusals"). The 404 follows
# whatever it does.
RoleRefusal = Callable[[Request], None]

logger = logging.getLogger("portal.audit")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Rule:
    """Who may call a route.

    ``public``: anyone, signed in or not. ``roles``: signed-in users holding one of these roles
    (``None``: any role). ``api``: answers in JSON and accepts personal access tokens.
    ``pending``: a half signed-in session (password accepted, code not yet) is enough.
    """

    public: bool = False
    roles: frozenset[Role] | None = None
    api: bool = False
    pending: bool = False

    def describe(self) -> str:
        if self.public:
            return "public"
        if self.pending:
            return "password step done"
        roles = "any role" if self.roles is None else ", ".join(sorted(self.roles))
        return f"{'API' if self.api else 'page'}: {roles}"


PUBLIC = Rule(public=True)
PENDING = Rule(pending=True)
ANY_USER = Rule()
ANY_API_USER = Rule(api=True)


def roles(*allowed: Role) -> Rule:
    return Rule(roles=frozenset(allowed))


def api_roles(*allowed: Role) -> Rule:
    return Rule(roles=frozenset(allowed), api=True)


class RuledRoute(Route):
    """A Starlette route that carries its access rule (read by the route-table test)."""

    rule: Rule


def route(
    path: str,
    handler: Handler,
    *,
    rule: Rule,
    methods: list[str],
    on_role_refusal: RoleRefusal | None = None,
    head: bool = True,
    body: BodyLimit | None = None,
) -> RuledRoute:
    """``on_role_refusal``: audits a refusal by role of an object that exists (see RoleRefusal).
    ``head=False``: no HEAD beside GET (405, ``Allow: GET``): content routes, where a HEAD would
    be recorded as a download although no byte is sent.
    ``body``: the most bytes of body the route reads (web.bodies): by default a form's
    (``FORM_MAX_BYTES``) for a page and a JSON body's (``JSON_MAX_BYTES``) for the API;
    ``STREAMED`` for an upload route, which counts its body against the upload limit itself."""
    is_async = inspect.iscoroutinefunction(handler)
    if body is None:
        body = JSON_MAX_BYTES if rule.api else FORM_MAX_BYTES

    async def endpoint(request: Request) -> Response:
        principal = await run_in_threadpool(authenticate, request, api=rule.api)
        request.state.principal = principal
        try:
            refusal = _refusal(request, rule, principal)
        except PortalError:
            if on_role_refusal is not None and principal is not None and principal.mfa_done:
                await run_in_threadpool(_audit_role_refusal, on_role_refusal, request)
            raise
        if refusal is not None:
            return refusal
        cookie_borne = principal is None or principal.via_session
        if request.method not in SAFE_METHODS and cookie_borne and is_urlencoded(request):
            # Parsed here, small whatever the route's own limit (web.bodies.read_form), once: for
            # the CSRF check and so that plain (thread-pool) handlers can read it (see
            # submitted_form). Only for cookie-borne calls: a token-bearing API call's body is
            # the handler's to read (curl --data-binary says urlencoded by default; parsing it
            # here left the upload a consumed stream).
            request.state.form = await read_form(request)
        deferred = False
        if request.method not in SAFE_METHODS and cookie_borne:
            # Cookie-borne requests must prove they come from our own pages (CSRF). Requests
            # authenticated by a bearer token carry no ambient credential and need no such proof.
            if (
                isinstance(body, Streamed)
                and is_multipart(request)
                and not request.headers.get(csrf.HEADER)
            ):
                # A plain upload form: its token is its first field, read by the handler before
                # anything else (check_form_token), never the address, where a refused upload
                # would leave it in the address bar.
                deferred = request.state.csrf_deferred = True
            else:
                try:
                    csrf.require_valid_token(request)
                except NotAllowed:
                    await run_in_threadpool(_audit_csrf_failure, request, principal)
                    raise
        if is_async:
            response = await cast(Callable[[Request], Awaitable[Response]], handler)(request)
        else:
            response = await run_in_threadpool(
                cast(Callable[[Request], Response], handler), request
            )
        if deferred and not getattr(request.state, "csrf_checked", False):
            raise RuntimeError(f"{path}: a streamed form was handled without its CSRF check")
        csrf.set_cookie(request, response)
        return response

    built = RuledRoute(path, endpoint, methods=methods, name=handler.__name__)
    if not head and built.methods is not None:
        built.methods.discard("HEAD")  # Starlette adds it to every GET route
    built.rule = rule
    if not isinstance(body, Streamed):
        built.app = limit_body(built.app, body)
    return built


def _audit_role_refusal(hook: RoleRefusal, request: Request) -> None:
    """Run a route's refusal hook; never raise. The answer is the rule's 404 whatever happens
    here: a 500 for an object that exists (and a 404 for one that does not) would be an oracle."""
    try:
        hook(request)
    except Exception as exc:
        logger.warning("a refusal could not be audited (%s)", type(exc).__name__)


async def check_form_token(request: Request, fields: Mapping[str, str]) -> None:
    """The CSRF check of a streamed form, on its fields read before the file (403, audited)."""
    if not getattr(request.state, "csrf_deferred", False):
        return
    try:
        csrf.require_sent_token(request, fields.get(csrf.FIELD, ""))
    except NotAllowed:
        await run_in_threadpool(_audit_csrf_failure, request, principal_of_request(request))
        raise
    request.state.csrf_checked = True


def principal_of_request(request: Request) -> Principal | None:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


def _audit_csrf_failure(request: Request, principal: Principal | None) -> None:
    from audit import Actor
    from portal import refusals
    from portal.audit_vocabulary import Action
    from portal.web.requests import origin_of, runtime_of

    runtime = runtime_of(request)
    refusals.record_alone(
        runtime.engine,
        runtime.auditor,
        Action.ACCESS_DENIED,
        actor=principal.actor if principal is not None else Actor(),
        origin=origin_of(request),
        now=runtime.clock(),
        reason="csrf",
        details={"method": request.method.lower()},
    )


def _refusal(request: Request, rule: Rule, principal: Principal | None) -> Response | None:
    if rule.public:
        return None
    if principal is None:
        if rule.api:
            raise Unauthenticated("Send a valid personal access token.")
        return RedirectResponse("/sign-in", status_code=303)
    if not principal.mfa_done:
        if rule.pending:
            return None
        if rule.api:
            raise Unauthenticated("Finish signing in first.")
        return RedirectResponse("/sign-in/code", status_code=303)
    if rule.pending:
        # Already fully signed in: the code page has nothing to do.
        return RedirectResponse("/", status_code=303)
    if rule.roles is not None and principal.role not in rule.roles:
        # Not 403: a route the caller may not use looks exactly like one that does not exist.
        raise NotFound()
    return None


def principal_of(request: Request) -> Principal:
    principal: Principal | None = request.state.principal
    if principal is None:  # pragma: no cover - the rule check runs first
        raise NotFound()
    return principal


def optional_principal(request: Request) -> Principal | None:
    found: Principal | None = getattr(request.state, "principal", None)
    return found


def form_value(form: Any, name: str, limit: int = 1000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""

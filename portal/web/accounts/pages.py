"""Pages for one's own account and API tokens, and for administrators' user list."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.accounts import throttle, tokens, users
from portal.accounts.models import Role, User
from portal.accounts.signin import SignInRefused
from portal.auditing import Action, Target, TargetKind
from portal.errors import Invalid, NotFound
from portal.exchange.scans import scan_backlog
from portal.models import Organisation
from portal.text import TextRefused, clean_text, is_whole_number
from portal.web.access import ANY_USER, form_value, principal_of, roles, route
from portal.web.accounts.api import revoke_token
from portal.web.principal import Principal
from portal.web.rendering import render
from portal.web.requests import origin_of, path_id, runtime_of, submitted_form


def _account_context(db: Session, principal: Principal) -> dict[str, Any]:
    return {
        "organisation": db.get(Organisation, principal.organisation_id),
        "tokens": tokens.list_tokens(db, principal.user_id),
    }


def account_page(request: Request) -> Response:
    principal = principal_of(request)
    with Session(runtime_of(request).engine) as db:
        return render(request, "accounts/account.html", _account_context(db, principal))


def token_create(request: Request) -> Response:
    """A new API token, only with a fresh code from the authenticator app (step-up MFA)."""
    principal = principal_of(request)
    runtime = runtime_of(request)
    now = runtime.clock()
    form = submitted_form(request)
    name, code = form_value(form, "name", 200).strip(), form_value(form, "code", 40)
    days_text = form_value(form, "days", 10).strip() or str(tokens.DEFAULT_DAYS)
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = (
            "Enter a name for the token, to recognise it later (for example 'upload script')."
        )
    else:
        try:
            name = clean_text(name, what="token's name", longest=100)
        except TextRefused as refused:
            errors["name"] = str(refused)
    if not is_whole_number(days_text) or not 1 <= int(days_text) <= tokens.MAX_DAYS:
        errors["days"] = f"Enter a number of days from 1 to {tokens.MAX_DAYS}."
    if not code.strip():
        errors["code"] = "Enter the 6-digit code from your authenticator app."
    with Session(runtime.engine) as db:
        user = db.get(User, principal.user_id)
        assert user is not None
        if not errors:
            try:
                runtime.signin.check_second_factor(
                    db, user=user, code=code, origin=origin_of(request), now=now
                )
            except SignInRefused as refused:
                errors["code"] = refused.message
        if errors:
            context = {**_account_context(db, principal), "errors": errors, "name": name}
            return render(request, "accounts/account.html", context, status=400)
        row, raw = tokens.create_token(db, user, name=name, days=int(days_text), now=now)
        runtime.auditor.record(
            db,
            Action.TOKEN_CREATED,
            actor=principal.actor,
            now=now,
            origin=origin_of(request),
            target=Target(TargetKind.TOKEN, str(row.id)),
            details={"expires_in_days": int(days_text), "mfa": True},
        )
        db.commit()
        context = {**_account_context(db, principal), "new_token": raw, "new_token_name": row.name}
        return render(request, "accounts/account.html", context)


def token_revoke(request: Request) -> Response:
    revoke_token(request, any_owner=False)
    return RedirectResponse("/account", status_code=303)


# --- Administrators ---------------------------------------------------------------------------


def admin_users(request: Request) -> Response:
    with Session(runtime_of(request).engine) as db:
        rows = db.exec(
            select(User, Organisation)
            .join(Organisation, col(Organisation.id) == User.organisation_id)
            .order_by(col(Organisation.name), col(User.email))
        ).all()
        waiting = throttle.account_states(
            db, [user.email for user, _ in rows], runtime_of(request).clock()
        )
        listed = [
            {
                "user": user,
                "organisation": org,
                "tokens": tokens.list_tokens(db, user.id or 0),
                "waiting_until": waiting.get(user.email),
            }
            for user, org in rows
        ]
        backlog = scan_backlog(db)
        return render(request, "accounts/admin_users.html", {"users": listed, "backlog": backlog})


def admin_user_disable(request: Request) -> Response:
    principal = principal_of(request)
    runtime = runtime_of(request)
    now = runtime.clock()
    with Session(runtime.engine) as db:
        user = db.get(User, path_id(request, "user_id"))
        if user is None:
            raise NotFound()
        if user.id == principal.user_id:
            raise Invalid("You cannot disable your own account.", code="cannot_disable_self")
        users.disable_account(
            db, runtime.auditor, user, actor=principal.actor, now=now, origin=origin_of(request)
        )
        db.commit()
    return RedirectResponse("/admin/users", status_code=303)


def admin_user_unlock(request: Request) -> Response:
    """Clear an account's failed sign-in counts, so that its owner need not wait (audited)."""
    principal = principal_of(request)
    runtime = runtime_of(request)
    now = runtime.clock()
    with Session(runtime.engine) as db:
        user = db.get(User, path_id(request, "user_id"))
        if user is None:
            raise NotFound()
        users.unlock_account(
            db, runtime.auditor, user, actor=principal.actor, now=now, origin=origin_of(request)
        )
        db.commit()
    return RedirectResponse("/admin/users", status_code=303)


def admin_token_revoke(request: Request) -> Response:
    revoke_token(request, any_owner=True)
    return RedirectResponse("/admin/users", status_code=303)


ROUTES = [
    route("/account", account_page, rule=ANY_USER, methods=["GET"]),
    route("/account/tokens", token_create, rule=ANY_USER, methods=["POST"]),
    route("/account/tokens/{token_id}/revoke", token_revoke, rule=ANY_USER, methods=["POST"]),
    route("/admin/users", admin_users, rule=roles(Role.admin), methods=["GET"]),
    route(
        "/admin/users/{user_id}/disable",
        admin_user_disable,
        rule=roles(Role.admin),
        methods=["POST"],
    ),
    route(
        "/admin/users/{user_id}/unlock",
        admin_user_unlock,
        rule=roles(Role.admin),
        methods=["POST"],
    ),
    route(
        "/admin/tokens/{token_id}/revoke",
        admin_token_revoke,
        rule=roles(Role.admin),
        methods=["POST"],
    ),
]

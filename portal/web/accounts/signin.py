"""Pages for signing in, enrolling and signing out. Thin: parse, call a service, render."""

from __future__ import annotations

from typing import Any

import qrcode
import qrcode.image.svg
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.accounts import sessions, totp, users
from portal.accounts.devices import LIFETIME
from portal.accounts.models import WebSession
from portal.accounts.signin import SignInRefused, actor_of
from portal.accounts.users import AccountError
from portal.auditing import Action, Target, TargetKind
from portal.errors import NotFound
from portal.web import csrf
from portal.web.access import (
    ANY_USER,
    PENDING,
    PUBLIC,
    form_value,
    optional_principal,
    principal_of,
    route,
)
from portal.web.principal import session_cookie_name
from portal.web.rendering import render
from portal.web.requests import origin_of, runtime_of, submitted_form

ISSUER = "Secure document exchange"


def _set_session_cookie(request: Request, response: Response, raw: str) -> None:
    response.set_cookie(
        session_cookie_name(request),
        raw,
        httponly=True,
        secure=runtime_of(request).settings.uses_tls,
        samesite="lax",
        path="/",
    )


def device_cookie_name(request: Request) -> str:
    return "__Host-portal_device" if runtime_of(request).settings.uses_tls else "portal_device"


def _set_device_cookie(request: Request, response: Response, raw: str | None) -> None:
    """Marks this browser as one the account signed in with (portal/accounts/devices.py)."""
    if raw is None:
        return
    response.set_cookie(
        device_cookie_name(request),
        raw,
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        secure=runtime_of(request).settings.uses_tls,
        samesite="lax",
        path="/",
    )


def sign_in_page(request: Request) -> Response:
    principal = optional_principal(request)
    if principal is not None and principal.mfa_done:
        return RedirectResponse("/", status_code=303)
    return render(request, "accounts/sign_in.html", {"email": ""})


def sign_in_submit(request: Request) -> Response:
    form = submitted_form(request)
    email, password = form_value(form, "email", 320), form_value(form, "password", 1000)
    errors = {}
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."  # noqa: S105
    if errors:
        return render(
            request, "accounts/sign_in.html", {"email": email, "errors": errors}, status=400
        )
    runtime = runtime_of(request)
    now = runtime.clock()
    with Session(runtime.engine) as db:
        try:
            user = runtime.signin.check_password(
                db,
                email=email,
                password=password,
                origin=origin_of(request),
                now=now,
                device=request.cookies.get(device_cookie_name(request)),
            )
        except SignInRefused as refused:
            # One page whatever was wrong, not even echoing the address typed: the answer for an
            # unknown account is byte-for-byte the answer for a wrong password.
            return render(
                request,
                "accounts/sign_in.html",
                {"email": "", "errors": {"email": refused.message}},
                status=400,
            )
        raw = sessions.start_session(db, user, mfa_done=False, now=now)
        db.commit()
    csrf.renew(request)
    response = RedirectResponse("/sign-in/code", status_code=303)
    _set_session_cookie(request, response, raw)
    return response


def code_page(request: Request) -> Response:
    return render(request, "accounts/sign_in_code.html")


def code_submit(request: Request) -> Response:
    principal = principal_of(request)
    code = form_value(submitted_form(request), "code", 40)
    if not code.strip():
        errors = {"code": "Enter the 6-digit code from your authenticator app."}
        return render(request, "accounts/sign_in_code.html", {"errors": errors}, status=400)
    runtime = runtime_of(request)
    now = runtime.clock()
    with Session(runtime.engine) as db:
        user = users.find_user(db, principal.email)
        pending = db.get(WebSession, principal.session_id)
        assert pending is not None
        try:
            method = runtime.signin.check_second_factor(
                db,
                user=user,
                code=code,
                origin=origin_of(request),
                now=now,
                device=request.cookies.get(device_cookie_name(request)),
            )
        except SignInRefused as refused:
            if refused.locked_until is not None:
                sessions.end_session(db, pending, now=now)
                db.commit()
                csrf.renew(request)  # the sign-in form below is for the anonymous pre-session
                response: Response = render(
                    request,
                    "accounts/sign_in.html",
                    {"email": "", "errors": {"email": refused.message}},
                    status=400,
                )
                response.delete_cookie(session_cookie_name(request), path="/")
                return response
            return render(
                request,
                "accounts/sign_in_code.html",
                {"errors": {"code": refused.message}},
                status=400,
            )
        # A fresh session id at sign-in: an id planted before sign-in (fixation) is worthless.
        sessions.end_session(db, pending, now=now)
        raw = sessions.start_session(db, user, mfa_done=True, now=now)
        runtime.auditor.record(
            db,
            Action.SIGN_IN,
            actor=actor_of(user),
            now=now,
            origin=origin_of(request),
            details={"method": method, "mfa": True},
        )
        if method == "recovery_code":
            runtime.auditor.record(
                db,
                Action.RECOVERY_CODE_USED,
                actor=actor_of(user),
                now=now,
                origin=origin_of(request),
            )
        db.commit()
        device = runtime.signin.issue_device_cookie(user, now)
    csrf.renew(request)
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(request, response, raw)
    _set_device_cookie(request, response, device)
    return response


def sign_out(request: Request) -> Response:
    principal = principal_of(request)
    runtime = runtime_of(request)
    now = runtime.clock()
    with Session(runtime.engine) as db:
        web_session = db.get(WebSession, principal.session_id)
        if web_session is not None:
            sessions.end_session(db, web_session, now=now)
        runtime.auditor.record(
            db, Action.SIGN_OUT, actor=principal.actor, now=now, origin=origin_of(request)
        )
        db.commit()
    csrf.renew(request)
    response = render(request, "accounts/signed_out.html")
    response.delete_cookie(session_cookie_name(request), path="/")
    return response


# --- Enrolment -------------------------------------------------------------------------------


def _enrolment(request: Request, db: Session) -> tuple[Any, Any]:
    found = users.find_enrolment(db, request.path_params["token"], now=runtime_of(request).clock())
    if found is None:
        raise NotFound(
            "This link has expired or has already been used. Ask your portal administrator to "
            "send you a new one.",
            code="enrolment_link_invalid",
        )
    return found


def enrol_page(request: Request) -> Response:
    with Session(runtime_of(request).engine) as db:
        _, user = _enrolment(request, db)
        return render(request, "accounts/enrol_password.html", {"email": user.email})


def enrol_password(request: Request) -> Response:
    runtime = runtime_of(request)
    form = submitted_form(request)
    with Session(runtime.engine) as db:
        _, user = _enrolment(request, db)
        try:
            users.set_password(
                db,
                user,
                form_value(form, "password"),
                form_value(form, "confirm"),
                hasher=runtime.signin.hasher,
            )
        except AccountError as problem:
            return render(
                request,
                "accounts/enrol_password.html",
                {"email": user.email, "errors": {"password": str(problem)}},
                status=400,
            )
        users.start_totp(db, user, box=runtime.signin.secret_box)
        db.commit()
    return RedirectResponse(f"/enrol/{request.path_params['token']}/app", status_code=303)


def _app_context(runtime: Any, user: Any) -> dict[str, Any]:
    secret = runtime.signin.secret_box.open(user.totp_secret_sealed).decode()
    uri = totp.provisioning_uri(secret, account=user.email, issuer=ISSUER)
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=10)
    return {"secret": totp.group_secret(secret), "qr_svg": image.to_string(encoding="unicode")}


def enrol_app_page(request: Request) -> Response:
    runtime = runtime_of(request)
    with Session(runtime.engine) as db:
        _, user = _enrolment(request, db)
        if user.password_hash is None or user.totp_secret_sealed is None:
            return RedirectResponse(f"/enrol/{request.path_params['token']}", status_code=303)
        return render(request, "accounts/enrol_app.html", _app_context(runtime, user))


def enrol_app_submit(request: Request) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock()
    code = form_value(submitted_form(request), "code", 40)
    with Session(runtime.engine) as db:
        enrolment, user = _enrolment(request, db)
        try:
            enrolled = users.confirm_totp(
                db, enrolment, user, code, box=runtime.signin.secret_box, now=now
            )
        except AccountError as problem:
            if user.password_hash is None:
                return RedirectResponse(f"/enrol/{request.path_params['token']}", status_code=303)
            context = {**_app_context(runtime, user), "errors": {"code": str(problem)}}
            return render(request, "accounts/enrol_app.html", context, status=400)
        runtime.auditor.record(
            db,
            Action.MFA_ENROLLED,
            actor=actor_of(user),
            now=now,
            origin=origin_of(request),
            target=Target(TargetKind.USER, str(user.id)),
        )
        db.commit()
    return render(request, "accounts/recovery_codes.html", {"codes": enrolled.recovery_codes})


ROUTES = [
    route("/sign-in", sign_in_page, rule=PUBLIC, methods=["GET"]),
    route("/sign-in", sign_in_submit, rule=PUBLIC, methods=["POST"]),
    route("/sign-in/code", code_page, rule=PENDING, methods=["GET"]),
    route("/sign-in/code", code_submit, rule=PENDING, methods=["POST"]),
    route("/sign-out", sign_out, rule=ANY_USER, methods=["POST"]),
    route("/enrol/{token}", enrol_page, rule=PUBLIC, methods=["GET"]),
    route("/enrol/{token}", enrol_password, rule=PUBLIC, methods=["POST"]),
    route("/enrol/{token}/app", enrol_app_page, rule=PUBLIC, methods=["GET"]),
    route("/enrol/{token}/app", enrol_app_submit, rule=PUBLIC, methods=["POST"]),
]

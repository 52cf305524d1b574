"""The printable page of a destruction certificate (the DPO console links to it)."""

from __future__ import annotations

import json

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts.models import Role
from portal.destruction import services
from portal.web.access import roles, route
from portal.web.rendering import render
from portal.web.requests import acting_of, runtime_of


def certificate_page(request: Request) -> Response:
    acting = acting_of(request)
    with Session(runtime_of(request).engine) as db:
        certificate = services.find_certificate(db, acting, request.path_params["ref"])
        content = json.loads(certificate.body)
        return render(
            request,
            "destruction/certificate.html",
            {
                "certificate": certificate,
                "content": content,
                "signature": certificate.signature,
                "fingerprint": certificate.key_fingerprint,
            },
        )


ROUTES = [
    route(
        "/destruction/certificates/{ref}",
        certificate_page,
        rule=roles(Role.dpo, Role.lead),
        methods=["GET"],
    ),
]

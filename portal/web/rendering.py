"""Server-rendered pages: Jinja2 templates on the Scottish Government Design System."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from portal import __version__
from portal.web import csrf

TEMPLATES = Path(__file__).parent.parent / "templates"


def make_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is escaped unless a template says otherwise
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    environment: jinja2.Environment = request.state.runtime.templates
    values = {
        "request": request,
        "principal": getattr(request.state, "principal", None),
        "csrf_token": csrf.token_for(request),
        "version": __version__,
        "errors": {},
        **(context or {}),
    }
    html = environment.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status)
    csrf.set_cookie(request, response)
    return response

"""Server-rendered pages: Jinja2 templates on the Scottish Government Design System."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from portal import __version__
from portal.web import csrf

if TYPE_CHECKING:
    from portal.exchange.models import Review
    from portal.exchange.review_texts import ReviewTexts

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
    environment: jinja2.Environment = request.state.templates
    values = {
        "request": request,
        "principal": getattr(request.state, "principal", None),
        "csrf_token": csrf.token_for(request),
        "version": __version__,
        "errors": {},
        "review_texts": _review_texts(request),
        **(context or {}),
    }
    html = environment.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status)
    csrf.set_cookie(request, response)
    return response


def _review_texts(request: Request) -> Callable[[Review], ReviewTexts]:
    """``review_texts(review)`` in a template: its title and legal basis opened with its key
    (``.label`` names it, or says it was closed by destruction); each review opened once."""
    from portal.exchange.review_texts import open_review_texts

    opened: dict[str, ReviewTexts] = {}

    def texts(review: Review) -> ReviewTexts:
        if review.code not in opened:
            opened[review.code] = open_review_texts(request.state.runtime.vault, review)
        return opened[review.code]

    return texts

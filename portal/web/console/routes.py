"""Every route of the console, API and pages, for ``portal.web.app.routes``."""

from __future__ import annotations

from portal.web.console import api, pages

ROUTES = [*api.ROUTES, *pages.ROUTES]

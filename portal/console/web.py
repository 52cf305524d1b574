"""Every route of the console, API and pages, for ``portal.app.routes``."""

from __future__ import annotations

from portal.console import api, pages

ROUTES = [*api.ROUTES, *pages.ROUTES]

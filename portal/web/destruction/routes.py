"""Every route of destruction, API and pages, for ``portal.web.app.routes``."""

from __future__ import annotations

from portal.web.destruction import api, pages

ROUTES = [*api.ROUTES, *pages.ROUTES]

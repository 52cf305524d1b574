"""Every route of destruction, API and pages, for ``portal.app.routes``."""

from __future__ import annotations

from portal.destruction import api, pages

ROUTES = [*api.ROUTES, *pages.ROUTES]

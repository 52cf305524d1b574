"""The exchange routes: API and pages."""

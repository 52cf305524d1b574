"""The accounts routes: API and pages."""

"""The destruction routes: API and pages."""

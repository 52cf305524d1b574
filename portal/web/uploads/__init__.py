"""The uploads routes: API and pages."""

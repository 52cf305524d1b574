"""The console routes: API and pages."""

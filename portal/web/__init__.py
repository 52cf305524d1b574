"""The web layer: access rules, sessions and CSRF, security headers, rendering, error pages."""

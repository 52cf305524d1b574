"""Resumable uploads (tus 1.0): sessions and their encrypted parts, the API, and the sweep."""

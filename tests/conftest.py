"""Test harness: real PostgreSQL, clamd and SeaweedFS, started for the session (see tests/harness)."""

pytest_plugins = [
    "tests.harness.database",
    "tests.harness.clamd",
    "tests.harness.seaweedfs",
    "tests.harness.softhsm",
]

"""Accounts: users, sign-in with password and TOTP, sessions, API tokens."""

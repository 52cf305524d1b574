"""Destruction at the end of a review (SPEC §6): schedule, notices, holds, early destruction with
two people, cryptographic erase verified and certified. See docs/destruction.md.

    models        the tables
    schedule      what is due, and when
    holds         holds, and leads' requests for them
    early         bringing destruction forward (a DPO asks, a second person approves)
    execution     the run: erase, delete, verify, certify (safe with several workers)
    certificates  canonical JSON, signing and offline verification
    record        what a certificate says; the API's JSON shapes
    receipts      an uploader's receipt after destruction, from the certificate
    notices       30- and 7-day notices, in the portal and by e-mail
    services      finding certificates; the destroyer of a runtime
    rounds        the worker's share
    api, pages, openapi, cli   the interfaces
"""

"""The data protection officer's console: audit search, access histories, export and
verification, anomalies, and the destruction schedule, holds and certificates (issue 7).

DPOs only; they never see a document's content or file name. docs/dpo-console.md is the guide.
"""

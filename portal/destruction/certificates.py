"""Destruction certificates: canonical JSON, signed with Ed25519 by the portal's signing key.

Canonical JSON (docs/destruction.md): object keys sorted, no whitespace, UTF-8 (no ``\\u`` escapes
beyond what JSON requires), integers, strings, booleans and null only (no floats). The signature
covers the canonical bytes of the ``certificate`` member. An exported certificate is the canonical
JSON of ``{"certificate", "signature", "algorithm", "public_key_fingerprint"}``; verification
accepts only those exact bytes (plus one trailing newline), so that changing any byte fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from audit import PublicKey, SignatureInvalid, SigningKey
from portal.errors import Invalid

FORMAT = "dxp-destruction-certificate/2"
# /1: certificates issued before they stated the key's fate, the kept documents and the people.
FORMATS = frozenset({"dxp-destruction-certificate/1", FORMAT})
ALGORITHM = "Ed25519"
MAX_EXPORT_BYTES = 64 * 1024 * 1024


class CertificateInvalid(Invalid):
    """The file is not a certificate this portal signed: the one error of verification."""


def canonical(value: Any) -> bytes:
    """The canonical JSON encoding of ``value`` (see the module docstring)."""
    _refuse_floats(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _refuse_floats(value: Any) -> None:
    # Floats have no single canonical text form across languages; certificates never need one.
    if isinstance(value, float):
        raise ValueError("canonical JSON holds no floating-point numbers")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("canonical JSON object keys are strings")
            _refuse_floats(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_floats(item)


@dataclass(frozen=True)
class Signed:
    body: bytes  # canonical JSON of the certificate
    signature: str  # hex
    key_fingerprint: str

    def export(self) -> bytes:
        """The signed certificate as one canonical JSON document (what ``export`` writes)."""
        return canonical(
            {
                "algorithm": ALGORITHM,
                "certificate": json.loads(self.body),
                "public_key_fingerprint": self.key_fingerprint,
                "signature": self.signature,
            }
        )


def sign_certificate(content: dict[str, Any], key: SigningKey) -> Signed:
    body = canonical(content)
    return Signed(body=body, signature=key.sign(body), key_fingerprint=key.fingerprint)


def verify_export(data: bytes, public_key: PublicKey) -> dict[str, Any]:
    """The certificate in an exported file, if it is exactly what ``public_key`` signed.

    Raises ``CertificateInvalid`` for anything else: malformed, re-encoded, altered, another key.
    """
    if len(data) > MAX_EXPORT_BYTES:
        raise CertificateInvalid("the file is too large to be a certificate")
    text = data[:-1] if data.endswith(b"\n") else data
    try:
        envelope = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CertificateInvalid("the file is not JSON") from None
    if not isinstance(envelope, dict) or set(envelope) != {
        "algorithm",
        "certificate",
        "public_key_fingerprint",
        "signature",
    }:
        raise CertificateInvalid("the file is not a signed certificate")
    certificate = envelope["certificate"]
    try:
        if canonical(envelope) != text:
            raise CertificateInvalid("the file is not in canonical form: it was changed")
        body = canonical(certificate)
    except ValueError:
        raise CertificateInvalid("the file holds values a certificate never has") from None
    if envelope["algorithm"] != ALGORITHM or not isinstance(certificate, dict):
        raise CertificateInvalid("the file is not a signed certificate")
    if certificate.get("format") not in FORMATS:
        raise CertificateInvalid(f"the certificate is not in the format {FORMAT}")
    if envelope["public_key_fingerprint"] != public_key.fingerprint:
        raise CertificateInvalid("the certificate was signed with another key")
    try:
        public_key.verify(str(envelope["signature"]), body)
    except SignatureInvalid:
        raise CertificateInvalid("the signature does not match the certificate") from None
    return certificate

"""A destruction-certificate verifier written from docs/destruction.md ("The signed file, byte for
byte") alone: the standard library's ``json``, ``hashlib`` and ``base64``, and ``cryptography``.
It imports nothing from the portal (``portal``, ``storage``, ``audit``): a test checks that, so
that what an outside auditor would write is what is tested.

    python independent_verifier.py CERTIFICATE.json PUBLIC-KEY.pem    # exit 0 valid, 1 invalid
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMATS = ("dxp-destruction-certificate/1", "dxp-destruction-certificate/2")
ENVELOPE = {"algorithm", "certificate", "public_key_fingerprint", "signature"}


class Invalid(Exception):
    pass


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def raw_public_key(pem: bytes) -> bytes:
    """The 32 raw bytes of an Ed25519 SubjectPublicKeyInfo PEM: the last 32 bytes of its DER."""
    lines = pem.decode("ascii").strip().splitlines()
    if lines[0] != "-----BEGIN PUBLIC KEY-----" or lines[-1] != "-----END PUBLIC KEY-----":
        raise Invalid("not a PEM public key")
    der = base64.b64decode("".join(lines[1:-1]), validate=True)
    if len(der) != 44:
        raise Invalid("not an Ed25519 public key")
    return der[-32:]


def verify(data: bytes, pem: bytes) -> dict[str, Any]:
    """The certificate in ``data`` if it is exactly what the key in ``pem`` signed."""
    text = data[:-1] if data.endswith(b"\n") else data  # step 1: one trailing newline
    try:
        envelope = json.loads(text.decode("utf-8"))
    except ValueError:
        raise Invalid("not JSON") from None
    if not isinstance(envelope, dict) or set(envelope) != ENVELOPE:
        raise Invalid("not a signed certificate")
    if canonical(envelope) != text:  # steps 1-2: the exact canonical bytes
        raise Invalid("not in canonical form")
    certificate = envelope["certificate"]
    if envelope["algorithm"] != "Ed25519" or not isinstance(certificate, dict):
        raise Invalid("not an Ed25519 certificate")
    if certificate.get("format") not in FORMATS:  # step 3
        raise Invalid("unknown format")
    raw = raw_public_key(pem)  # step 5
    if envelope["public_key_fingerprint"] != hashlib.sha256(raw).hexdigest():
        raise Invalid("signed with another key")
    try:  # step 4: Ed25519 over the canonical bytes of the certificate member
        signature = bytes.fromhex(envelope["signature"])
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, canonical(certificate))
    except (ValueError, TypeError, InvalidSignature):
        raise Invalid("the signature does not match") from None
    return certificate


def main(argv: list[str]) -> int:
    with open(argv[1], "rb") as certificate, open(argv[2], "rb") as key:
        try:
            content = verify(certificate.read(), key.read())
        except Invalid as invalid:
            print(f"INVALID: {invalid}")
            return 1
    print(f"valid: {content['reference']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

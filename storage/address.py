"""Where an installation's key service is: a ``PORTAL_KMS`` value, parsed and opened.

``file:///FOLDER`` opens a ``FolderKeyService``; an RFC 7512 ``pkcs11:`` URI opens a
``storage.pkcs11.Pkcs11KeyService``, whose PKCS#11 library only an installation with an HSM loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import InvalidInput
from .keyservice import FolderKeyService, KeyService


@dataclass(frozen=True)
class KeyServiceAddress:
    """A parsed ``PORTAL_KMS`` value: ``file:///FOLDER`` or an RFC 7512 ``pkcs11:`` URI."""

    kind: str  # "file" or "pkcs11"
    folder: Path | None = None
    token: str = ""
    module_path: str = ""
    pin_value: str = ""
    pin_source: str = ""

    def describe(self) -> str:  # never the PIN
        if self.kind == "file":
            return f"file://{self.folder}"
        return f"pkcs11:token={self.token} (module {self.module_path})"


def parse_key_service_address(value: str) -> KeyServiceAddress:
    """Parse ``value``; ``InvalidInput`` naming what is wrong with it."""
    if value.startswith("file://"):
        parts = urlsplit(value)
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise InvalidInput(f"{value!r}: a key folder is file:///ABSOLUTE/PATH")
        return KeyServiceAddress("file", folder=Path(path))
    if value.startswith("pkcs11:"):
        body = value.removeprefix("pkcs11:")
        path_part, _, query = body.partition("?")
        attributes: dict[str, str] = {}
        for item in [*path_part.split(";"), *query.split("&")]:
            if not item:
                continue
            name, sep, raw = item.partition("=")
            if not sep:
                raise InvalidInput(f"{value!r}: {item!r} is not NAME=VALUE")
            attributes[name.strip().lower()] = unquote(raw)
        token = attributes.get("token", "")
        module = attributes.get("module-path", "")
        if not token or not module:
            raise InvalidInput(f"{value!r}: a PKCS#11 URI needs token=… and module-path=…")
        pin_source = attributes.get("pin-source", "").removeprefix("file:")
        return KeyServiceAddress(
            "pkcs11",
            token=token,
            module_path=module,
            pin_value=attributes.get("pin-value", ""),
            pin_source=pin_source,
        )
    raise InvalidInput(f"{value!r} is neither file:///FOLDER nor a pkcs11: URI")


def open_key_service(address: KeyServiceAddress) -> KeyService:
    if address.kind == "file":
        assert address.folder is not None
        return FolderKeyService(address.folder)
    from .pkcs11 import Pkcs11KeyService  # only installations with an HSM load its library

    return Pkcs11KeyService(address)

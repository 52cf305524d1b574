"""The known-answer vectors of docs/blob-format.md, and the code that generated them once.

``python -m tests.storage.vectors`` rewrites tests/storage/vectors.json; run it only when the format
changes (with a new format version). The tests check the checked-in file, not this generator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from storage import crypto
from storage.stream import Tally, seal_stream

VECTORS = Path(__file__).with_name("vectors.json")


def pattern(length: int) -> bytes:
    """The plaintext of every vector: byte i is i mod 251."""
    return bytes(i % 251 for i in range(length))


def replay(*values: bytes) -> Callable[[int], bytes]:
    """A "random" source that returns ``values`` in order (so a vector can be re-sealed)."""
    queue: Iterator[bytes] = iter(values)

    def draw(size: int) -> bytes:
        value = next(queue)
        assert len(value) == size, (len(value), size)
        return value

    return draw


def seeded(label: str) -> Callable[[int], bytes]:
    counter = 0

    def draw(size: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < size:
            counter += 1
            out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        return out[:size]

    return draw


_STREAMS = [
    ("empty", 256, 0),
    ("one byte", 256, 1),
    ("first segment minus one", 256, 199),
    ("first segment exactly", 256, 200),
    ("first segment plus one", 256, 201),
    ("two full segments", 256, 440),
    ("two segments plus one", 256, 441),
    ("five segments", 256, 1000),
    ("1 MiB segments, short", 1024 * 1024, 13),
    ("1 MiB segments, two segments", 1024 * 1024, 1024 * 1024 - 56 + 1),
]


def _stream(name: str, segment_size: int, length: int) -> dict[str, Any]:
    rand = seeded(name)
    data_key, key_id = rand(32), rand(16)
    salt, prefix = rand(32), rand(7)
    document_id = "DOC-" + name.upper().replace(" ", "-").replace(",", "")
    tally = Tally()
    blob = b"".join(
        seal_stream(
            [pattern(length)],
            ikm=data_key,
            key_id=key_id,
            document_id=document_id,
            tally=tally,
            random_bytes=replay(salt, prefix),
            segment_size=segment_size,
        )
    )
    vector: dict[str, Any] = {
        "name": name,
        "data_key": data_key.hex(),
        "key_id": key_id.hex(),
        "document_id": document_id,
        "segment_size": segment_size,
        "salt": salt.hex(),
        "nonce_prefix": prefix.hex(),
        "plaintext_length": length,
        "plaintext_sha256": tally.sha256,
        "associated_data": (blob[:26] + document_id.encode()).hex(),
        "blob_length": len(blob),
        "blob_sha256": hashlib.sha256(blob).hexdigest(),
    }
    if len(blob) <= 4096:
        vector["blob"] = blob.hex()
    return vector


def _invalid(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    five = next(v for v in streams if v["name"] == "five segments")
    blob = bytes.fromhex(five["blob"])
    first = 26 + 256  # end of segment 0: envelope (26) + first segment (256, header included)
    cases = {
        "truncated inside the final segment": blob[:-1],
        "truncated at a segment boundary": blob[: first + 256],
        "final segment dropped": blob[: first + 3 * 256],
        "segments 1 and 2 swapped": blob[:first]
        + blob[first + 256 : first + 512]
        + blob[first : first + 256]
        + blob[first + 512 :],
        "byte appended": blob + b"\x00",
        "envelope key id edited": blob[:10] + bytes([blob[10] ^ 1]) + blob[11:],
        "header salt edited": blob[:27] + bytes([blob[27] ^ 1]) + blob[28:],
        "tag of segment 0 edited": blob[: first - 1] + bytes([blob[first - 1] ^ 1]) + blob[first:],
    }
    return [{"name": name, "stream": five["name"], "blob": b.hex()} for name, b in cases.items()]


def _wrapping() -> list[dict[str, Any]]:
    rand = seeded("wrapping")
    key, nonce, plaintext = rand(32), rand(12), rand(32)
    ad = b"\x00".join([b"dxp review key v1", b"00112233aabbccdd", b"0123456789abcdef", b"SWG24"])
    sealed = crypto.seal(key, plaintext, ad, random_bytes=replay(nonce))
    return [
        {
            "name": "review key wrapped by a master key",
            "key": key.hex(),
            "nonce": nonce.hex(),
            "plaintext": plaintext.hex(),
            "associated_data": ad.hex(),
            "sealed": sealed.hex(),
        }
    ]


def build() -> dict[str, Any]:
    streams = [_stream(*case) for case in _STREAMS]
    return {
        "description": "Known-answer vectors for the portal's blob format; see docs/blob-format.md",
        "plaintext": "byte i of a vector's plaintext is i mod 251",
        "streams": streams,
        "invalid_blobs": _invalid(streams),
        "sealed_values": _wrapping(),
    }


if __name__ == "__main__":
    VECTORS.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {VECTORS}")

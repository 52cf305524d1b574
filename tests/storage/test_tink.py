"""Interoperability with Google Tink's AES-GCM-HKDF streaming AEAD, in both directions."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator

import pytest
import tink
from tink import secret_key_access, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from storage.stream import ENVELOPE_SIZE, Envelope, Tally, associated_data, open_stream, seal_stream

from .vectors import VECTORS, pattern

streaming_aead.register()


def tink_primitive(ikm: bytes, segment_size: int) -> streaming_aead.StreamingAead:
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
        version=0,
        key_value=ikm,
        params=aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
            ciphertext_segment_size=segment_size,
            derived_key_size=32,
            hkdf_hash_type=common_pb2.SHA256,
        ),
    )
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[
            tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url="type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey",
                    value=key.SerializeToString(),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,
            )
        ],
    )
    handle = tink.proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
    return handle.primitive(streaming_aead.StreamingAead)


def tink_open(blob: bytes, ikm: bytes, document_id: str) -> bytes:
    envelope = blob[:ENVELOPE_SIZE]
    segment_size = Envelope.decode(envelope).segment_size
    primitive = tink_primitive(ikm, segment_size)
    stream = io.BytesIO(blob[ENVELOPE_SIZE:])
    with primitive.new_decrypting_stream(stream, associated_data(envelope, document_id)) as out:
        return bytes(out.read())


class _Keep(io.BytesIO):
    def close(self) -> None:  # Tink closes its destination; keep the bytes readable
        pass


def tink_seal(data: bytes, ikm: bytes, envelope: bytes, document_id: str) -> bytes:
    primitive = tink_primitive(ikm, Envelope.decode(envelope).segment_size)
    sink = _Keep()
    with primitive.new_encrypting_stream(sink, associated_data(envelope, document_id)) as stream:
        stream.write(data)
    return envelope + sink.getvalue()


def memory_fetch(blob: bytes):  # type: ignore[no-untyped-def]
    def fetch(offset: int, length: int | None) -> Iterator[bytes]:
        yield blob[offset : None if length is None else offset + length]

    return fetch


@pytest.mark.parametrize(
    ("segment", "size"),
    [(256, 0), (256, 1), (256, 200), (256, 441), (256, 5000), (1 << 20, 0), (1 << 20, 3 << 20)],
)
def test_tink_opens_what_we_seal(segment: int, size: int) -> None:
    ikm, key_id, data = os.urandom(32), os.urandom(16), os.urandom(size)
    blob = b"".join(
        seal_stream(
            [data],
            ikm=ikm,
            key_id=key_id,
            document_id="DOC-7",
            tally=Tally(),
            random_bytes=os.urandom,
            segment_size=segment,
        )
    )
    assert tink_open(blob, ikm, "DOC-7") == data
    with pytest.raises(tink.TinkError):
        tink_open(blob, ikm, "DOC-8")  # Tink agrees: the document id is bound


@pytest.mark.parametrize(
    ("segment", "size"), [(256, 0), (256, 1), (256, 240), (256, 5000), (1 << 20, (3 << 20) + 7)]
)
def test_we_open_what_tink_seals(segment: int, size: int) -> None:
    ikm, key_id, data = os.urandom(32), os.urandom(16), os.urandom(size)
    envelope = Envelope(segment_size=segment, key_id=key_id).encode()
    blob = tink_seal(data, ikm, envelope, "DOC-9")
    opened = open_stream(memory_fetch(blob), ikm=ikm, key_id=key_id, document_id="DOC-9")
    assert b"".join(opened) == data
    start, end = size // 3, size // 3 + 300
    ranged = open_stream(
        memory_fetch(blob), ikm=ikm, key_id=key_id, document_id="DOC-9", start=start, end=end
    )
    assert b"".join(ranged) == data[start:end]


def test_tink_opens_the_checked_in_vectors() -> None:
    for v in json.loads(VECTORS.read_text())["streams"]:
        if "blob" in v:
            blob = bytes.fromhex(v["blob"])
            opened = tink_open(blob, bytes.fromhex(v["data_key"]), v["document_id"])
            assert opened == pattern(v["plaintext_length"]), v["name"]

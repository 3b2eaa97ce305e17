"""Whether a blob is compressed: small ones always try, large ones are probed first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.repository.blobstore import BlobStore
from amber.repository.crypto import MasterKey
from amber.storage.local import LocalBackend

KEY = MasterKey(bytes(range(32)), bytes(range(32, 64)))
RANDOM = os.urandom(2 << 20)
TEXT = b"".join(b"2026-11-26 12:00:%02d host sshd[%d]: session opened\n" % (i % 60, i) for i in range(40_000))


@pytest.mark.parametrize(
    ("data", "compressed"),
    [
        pytest.param(RANDOM[:1000], False, id="small-random"),
        pytest.param(TEXT[:1000], True, id="small-text"),
        pytest.param(RANDOM, False, id="large-random-probed"),
        pytest.param(TEXT[: 2 << 20], True, id="large-text"),
        pytest.param(bytes(1 << 20), True, id="large-zeros"),
        # the middle sample finds the text, so the whole blob is compressed
        pytest.param(RANDOM[:16384] + TEXT[:300_000] + RANDOM[16384:32768], True, id="text-in-the-middle"),
        # the probe passes, but compressing the whole saves too little
        pytest.param(
            RANDOM[:500_000] + TEXT[:20_000] + RANDOM[500_000:1_000_000], False, id="random-little-text"
        ),
    ],
)
def test_compression_is_used_when_it_pays(tmp_path: Path, data: bytes, compressed: bool) -> None:
    backend = LocalBackend(str(tmp_path / "repo"))
    backend.create()
    store = BlobStore(backend, KEY)
    sealed, raw_length = store.encode_blob(data)
    assert (raw_length > 0) is compressed
    if compressed:
        assert len(sealed) < len(data)
    blob_id = KEY.blob_id(data)
    assert store.decode_blob(blob_id, sealed, raw_length) == data


def _frame(data: bytes, with_size: bool = True) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3, write_content_size=with_size).compress(data)


@pytest.mark.parametrize(
    ("payload", "raw_length", "error"),
    [
        pytest.param(_frame(TEXT[:5000]), 5000, None, id="size-in-frame"),
        pytest.param(_frame(TEXT[:5000], with_size=False), 5000, None, id="no-size-in-frame-bounded"),
        pytest.param(_frame(TEXT[:5000]), 4000, "unexpected length|bad compression", id="frame-larger"),
        pytest.param(_frame(TEXT[:5000], with_size=False), 6000, "unexpected length", id="frame-shorter"),
        pytest.param(_frame(TEXT[:5000])[:-7], 5000, "bad compression", id="truncated-frame"),
    ],
)
def test_decoding_checks_the_indexed_raw_length(payload: bytes, raw_length: int, error: str | None) -> None:
    from amber.errors import IntegrityError
    from amber.repository.codec import BlobCodec
    from amber.repository.pack import BlobType
    from amber.repository.sealing import Kind, Sealer

    codec = BlobCodec(Sealer(KEY))
    blob_id = KEY.blob_id(TEXT[:5000])
    sealed = Sealer(KEY).seal(Kind.DATA, payload, blob_id)
    if error is None:
        assert codec.decode(blob_id, sealed, raw_length, BlobType.DATA) == TEXT[:5000]
        assert bytes(codec.open(blob_id, sealed, raw_length, BlobType.DATA).plain) == TEXT[:5000]
    else:
        with pytest.raises(IntegrityError, match=error):
            codec.decode(blob_id, sealed, raw_length, BlobType.DATA)

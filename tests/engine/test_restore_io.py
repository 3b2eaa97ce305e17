"""Zero blocks left as holes: the extents restore writes, against the naive definition."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.engine.restore_io import nonzero_extents, pwrite_nonzero

B = 4096
Z = bytes(B)


def naive(data: bytes, offset: int) -> list[tuple[int, int]]:
    """Every byte but those of all-zero file blocks (4 KiB, aligned to the file) lying wholly in data."""
    hole = [False] * len(data)
    for pos in range(-offset % B, len(data) - B + 1, B):
        if data[pos : pos + B] == Z:
            hole[pos : pos + B] = [True] * B
    extents: list[tuple[int, int]] = []
    for i, h in enumerate(hole):
        if h:
            continue
        if extents and extents[-1][1] == i:
            extents[-1] = (extents[-1][0], i + 1)
        else:
            extents.append((i, i + 1))
    return extents


@pytest.mark.parametrize(("data", "offset", "expected"), [
    (b"", 0, []),
    (b"abc", 0, [(0, 3)]),
    (Z, 0, []),  # one whole zero block: all hole
    (Z, 1, [(0, B)]),  # the same bytes across a block boundary of the file: written
    (b"x" + Z, 0, [(0, B + 1)]),  # an unaligned zero run is written
    (b"x" * (B - 1) + Z + b"y", 1, [(0, B - 1), (2 * B - 1, 2 * B)]),  # aligned to the file, not to data
    (Z + b"\1" + Z[1:], 0, [(B, 2 * B)]),  # a block starting with a non-zero byte
    (Z[:-1] + b"\1" + Z, 0, [(0, B)]),  # a block that is zero but for its last byte
    (b"\1" * B + Z + b"\1" * B + Z, 0, [(0, B), (2 * B, 3 * B)]),
    (Z * 3, B, []),
    (Z * 2 + b"\0" * 10, 0, [(2 * B, 2 * B + 10)]),  # a zero tail shorter than a block is written
    (b"\7" + bytes(4 * B), 0, [(0, B), (4 * B, 4 * B + 1)]),  # the last zero block is one byte short
])  # fmt: skip
def test_nonzero_extents(data: bytes, offset: int, expected: list[tuple[int, int]]) -> None:
    assert list(nonzero_extents(data, offset)) == expected == naive(data, offset)


_block = st.one_of(
    st.just(Z),
    st.binary(min_size=1, max_size=B + 3),
    st.builds(lambda n, b: bytes(n) + b, st.integers(0, B + 3), st.binary(min_size=1, max_size=3)),
    st.builds(lambda b, n: b + bytes(n), st.binary(min_size=1, max_size=3), st.integers(0, 3 * B)),
)


@given(st.lists(_block, max_size=6).map(b"".join), st.integers(0, 3 * B))
def test_nonzero_extents_match_the_naive_definition(data: bytes, offset: int) -> None:
    assert list(nonzero_extents(data, offset)) == naive(data, offset)


@given(st.lists(_block, max_size=4).map(b"".join), st.integers(0, 2 * B))
def test_pwrite_nonzero_leaves_the_same_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, at: int
) -> None:
    path = tmp_path_factory.mktemp("w") / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        end = pwrite_nonzero(fd, data, at)
        os.ftruncate(fd, at + len(data))
        assert os.pread(fd, len(data), at) == data
        extents = naive(data, at)
        assert end == (at + extents[-1][1] if extents else at)
    finally:
        os.close(fd)

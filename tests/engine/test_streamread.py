"""A pipe read that a cancel interrupts while the writer is silent."""

from __future__ import annotations

import io
import os
import threading

import pytest

from amber.cancel import CancelToken
from amber.engine.streamread import CancellableReader, cancellable
from amber.errors import Terminated


def read_all(reader: CancellableReader) -> bytes:
    out = bytearray()
    buf = memoryview(bytearray(4096))
    while n := reader.readinto(buf):
        out += buf[:n]
    return bytes(out)


def test_reads_everything_up_to_the_end() -> None:
    r, w = os.pipe()
    data = os.urandom(100_000)
    writer = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
    writer.start()
    try:
        assert read_all(CancellableReader(r, CancelToken())) == data
    finally:
        writer.join()
        os.close(r)


def test_a_cancel_ends_a_wait_on_a_silent_pipe() -> None:
    r, w = os.pipe()
    token = CancelToken()
    os.write(w, b"first")
    reader = CancellableReader(r, token)
    buf = memoryview(bytearray(64))
    assert reader.readinto(buf) == 5
    timer = threading.Timer(0.3, token.cancel, args=(Terminated(),))
    timer.start()
    try:
        with pytest.raises(Terminated):
            reader.readinto(buf)  # the writer is silent and the pipe open
    finally:
        timer.join()
        os.close(r)
        os.close(w)


def test_a_stream_without_a_descriptor_is_read_as_it_is() -> None:
    stream = io.BytesIO(b"abc")
    assert cancellable(stream, CancelToken()) is stream

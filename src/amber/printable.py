"""Text that quotes names from a backed-up machine, made safe to show (reports, dashboard pages).

Names are bytes; amber decodes them with ``os.fsdecode``, so a byte that is not
UTF-8 becomes a lone surrogate, which no UTF-8 encoder accepts, and a name may
hold terminal escapes (ESC, BEL, CR). Like :mod:`amber.errors`, it sits outside
the layer stack: the CLI's output, ops (reports) and web all use it.
"""

from __future__ import annotations


def printable(text: str, keep: str = "\n\t") -> str:
    """``text`` with control characters other than those in ``keep`` (line breaks and tabs) as
    escapes (``\\x1b``), and undecodable bytes as ``\\xNN``: safe on a terminal and encodable
    as UTF-8. Other characters, and escapes already made, are kept as they are."""
    rest = text
    for c in keep:
        rest = rest.replace(c, "")
    if rest.isprintable():
        return text  # the common case, checked in C
    return "".join(c if c.isprintable() or c in keep else _escape(c) for c in text)


def _escape(c: str) -> str:
    if 0xDC80 <= ord(c) <= 0xDCFF:  # a byte os.fsdecode could not decode
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c.encode("unicode_escape", "backslashreplace").decode("ascii")

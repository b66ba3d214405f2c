"""Hand-made tar streams for the draft-archive tests: entries Python's tarfile would not write (a 64 MiB GNU
long name, a huge pax header, devices), compressed on the fly so that building them never holds their
unpacked size in memory."""

from __future__ import annotations

import bz2
import zlib
from collections.abc import Iterable, Iterator

BLOCK = 512


def header(name: str, size: int, typeflag: bytes = b"0", *, linkname: str = "", gnu: bool = False) -> bytes:
    """One 512-byte ustar (or GNU) header block."""
    buf = bytearray(BLOCK)

    def put(offset: int, value: bytes) -> None:
        buf[offset : offset + len(value)] = value

    put(0, name.encode()[:100])
    put(100, b"0000644\0")
    put(108, b"0000000\0")
    put(116, b"0000000\0")
    put(124, b"%011o\0" % size)
    put(136, b"%011o\0" % 0)
    put(148, b" " * 8)
    put(156, typeflag)
    put(157, linkname.encode()[:100])
    put(257, b"ustar  \0" if gnu else b"ustar\x0000")
    put(148, b"%06o\0 " % sum(buf))
    return bytes(buf)


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def regular(name: str, content: bytes) -> Iterator[bytes]:
    yield header(name, len(content))
    yield padded(content)


def repeated(byte: bytes, size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """``size`` copies of ``byte`` in chunks, then the padding to a whole block."""
    left = size
    while left > 0:
        n = min(chunk, left)
        yield byte * n
        left -= n
    yield b"\0" * (-size % BLOCK)


def end() -> Iterator[bytes]:
    yield b"\0" * (2 * BLOCK)


def gzipped(parts: Iterable[bytes]) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush())
    return b"".join(out)


def bzipped(parts: Iterable[bytes]) -> bytes:
    compressor = bz2.BZ2Compressor(9)
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush())
    return b"".join(out)


def small_policy() -> Iterator[bytes]:
    """A valid policy-directory layout (one rego, one data file)."""
    yield from regular("rego/residency/decision.rego", b"package residency\n")
    yield from regular("data/x.json", b"{}")

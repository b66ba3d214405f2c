"""Reading an uploaded draft archive with bounded memory, entry count and unpacked size.

A draft upload is at most ``INGEST_POLICY_DRAFT_MAX_BYTES`` (16 MiB) on the wire, but a compressed tar can
unpack to gigabytes, and tar's extension headers are read whole into memory by Python's ``tarfile``: a GNU
long-name entry of a 522 KB upload once pushed the ingest to 655 MB. So:

- the compressed stream is inflated by ``gzip`` / ``bz2`` / ``lzma`` file objects, whose ``read(n)`` never
  inflates more than ``n`` bytes, behind a reader that refuses to deliver more than
  :attr:`ArchiveLimits.max_stream_bytes` in total (headers and padding included);
- ``tarfile`` reads that stream sequentially (``r|``: no member index, no seeking back), and every extension
  header (GNU long name or link, pax) is checked against its limit by :class:`_CheckedTarInfo` from its
  512-byte header, *before* tarfile reads its payload;
- every entry counts (directories too), its path is limited, only regular files and directories are
  accepted (links, devices, FIFOs, sparse files are refused), each file's declared size is checked before
  it is read, and file contents plus extension headers together may not pass ``max_total_bytes``.

Every refusal is a :class:`DraftArchiveError` naming the entry (its path, or its position when the path is
what is refused) and the limit.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import tarfile
from dataclasses import dataclass
from typing import Any

from policy.errors import PolicyDraftError

BLOCK = tarfile.BLOCKSIZE
MIB = 1024 * 1024


class DraftArchiveError(PolicyDraftError):
    """An archive entry or the archive as a whole is beyond a limit, or of a kind a policy cannot hold."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What one draft may hold (a policy directory is a few dozen files of a few KiB each)."""

    max_entries: int = 2000
    """Entries of any kind, directories included."""
    max_entry_bytes: int = 4 * MIB
    """One file's size."""
    max_total_bytes: int = 16 * MIB
    """Every file's content plus every extension header's payload."""
    max_name_bytes: int = 255
    """One path, in UTF-8 bytes."""
    max_header_bytes: int = 64 * 1024
    """One pax extended header's payload (a GNU long name or link is limited to ``max_name_bytes``)."""

    @property
    def max_stream_bytes(self) -> int:
        """The uncompressed tar stream: contents, plus per entry at most a header, an extension header's
        block, padding, and the end-of-archive blocks."""
        return self.max_total_bytes + (self.max_entries + 2) * 4 * BLOCK


_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


class _BoundedStream(io.RawIOBase):
    """The decompressed tar stream; refuses to deliver more than ``limit`` bytes."""

    def __init__(self, source: io.BufferedIOBase, limit: int) -> None:
        self._source = source
        self._limit = limit
        self.delivered = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._limit + 1 - self.delivered
        size = min(size, self._limit + 1 - self.delivered)
        data = self._source.read(size) if size > 0 else b""
        self.delivered += len(data)
        if self.delivered > self._limit:
            raise DraftArchiveError(
                f"the archive unpacks to more than {self._limit} bytes of tar stream (headers included)"
            )
        return data


def _decompressed(archive: bytes, stack: contextlib.ExitStack[bool | None]) -> io.BufferedIOBase:
    """A file object of the tar stream: gzip, bzip2 and xz are recognised by their magic bytes."""
    raw = io.BytesIO(archive)
    if archive[:2] == b"\x1f\x8b":
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    if archive[:3] == b"BZh":
        return stack.enter_context(bz2.BZ2File(raw, mode="rb"))
    if archive[:6] == b"\xfd7zXZ\x00":
        return stack.enter_context(lzma.LZMAFile(raw, mode="rb"))
    return raw  # an uncompressed tar


def _checked_tarinfo(limits: ArchiveLimits, counter: list[int]) -> type[tarfile.TarInfo]:
    """A TarInfo class that checks extension headers before tarfile reads their payload.

    ``_proc_member`` is tarfile's documented hook for subclasses ("can be overridden in a subclass to add
    custom _proc_*() methods"); it runs right after the 512-byte header was parsed."""

    class _CheckedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
            counter[0] += 1
            position = counter[0]
            if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                what = "GNU long name" if self.type == tarfile.GNUTYPE_LONGNAME else "GNU long link name"
                if self.size > limits.max_name_bytes + 1:  # + the terminating NUL
                    raise DraftArchiveError(
                        f"entry {position} ({self.name}): a {what} of {self.size} bytes; paths are limited "
                        f"to {limits.max_name_bytes} bytes"
                    )
                counter[1] += self.size
            elif self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
                if self.size > limits.max_header_bytes:
                    raise DraftArchiveError(
                        f"entry {position} ({self.name}): a pax extended header of {self.size} bytes; the "
                        f"limit is {limits.max_header_bytes}"
                    )
                counter[1] += self.size
            elif self.type == tarfile.GNUTYPE_SPARSE:
                raise DraftArchiveError(
                    f"{self.name}: a sparse file; a policy archive may hold only regular files and directories"
                )
            if counter[1] > limits.max_total_bytes:
                raise DraftArchiveError(
                    f"entry {position} ({self.name}): the archive unpacks to more than {limits.max_total_bytes} "
                    "bytes (files and extension headers)"
                )
            # typeshed does not declare tarfile's private hook (documented in tarfile.py for subclasses)
            return super()._proc_member(tarfile_)  # type: ignore[misc]

    return _CheckedTarInfo


def read_archive(archive: bytes, limits: ArchiveLimits) -> dict[str, bytes]:
    """``{member path: content}`` of the regular files of a (gzip, bzip2, xz or plain) tar archive.

    Directories are counted and skipped; anything else is refused. Paths are returned as written in the
    archive (the caller checks and normalises them)."""
    counter = [0, 0]  # entries seen (extension headers included), bytes of extension headers
    files: dict[str, bytes] = {}
    total = 0
    entries = 0
    try:
        with contextlib.ExitStack() as stack:
            stream = _BoundedStream(_decompressed(archive, stack), limits.max_stream_bytes)
            checked = _checked_tarinfo(limits, counter)
            tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r|", tarinfo=checked))
            while (member := tar.next()) is not None:
                # tarfile keeps every member read (pax headers included): not needed here. ``members`` is
                # TarFile's undocumented list behind getmembers(); typeshed does not declare it
                tar.members.clear()  # type: ignore[attr-defined]
                entries += 1
                name = member.name
                shown = name if len(name) <= 80 else name[:80] + "..."
                if entries > limits.max_entries:
                    raise DraftArchiveError(
                        f"{shown}: the archive holds more than {limits.max_entries} entries (directories included)"
                    )
                size = len(name.encode("utf-8", "surrogateescape"))
                if size > limits.max_name_bytes:
                    raise DraftArchiveError(
                        f"{shown}: a path of {size} bytes; paths are limited to {limits.max_name_bytes} bytes"
                    )
                if member.isdir():
                    continue
                if not member.isreg() or member.type == tarfile.CONTTYPE:
                    kind = _KINDS.get(member.type, f"an entry of type {member.type!r}")
                    target = f" to {member.linkname!r}" if member.issym() or member.islnk() else ""
                    raise DraftArchiveError(
                        f"{shown}: {kind}{target}; a policy archive may hold only regular files and directories"
                    )
                if member.size > limits.max_entry_bytes:
                    raise DraftArchiveError(
                        f"{shown}: {member.size} bytes; one file may have at most {limits.max_entry_bytes}"
                    )
                total += member.size
                if total + counter[1] > limits.max_total_bytes:
                    raise DraftArchiveError(
                        f"{shown}: the archive unpacks to more than {limits.max_total_bytes} "
                        "bytes (files and extension headers)"
                    )
                handle = tar.extractfile(member)
                files[name] = handle.read() if handle else b""
    except DraftArchiveError:
        raise
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, UnicodeError) as exc:
        raise PolicyDraftError(f"not a readable tar archive (gzip, bzip2, xz or plain): {exc}") from exc
    return files


def check_file_map(files: dict[str, bytes], limits: ArchiveLimits) -> None:
    """The same limits for a draft sent as ``{path: content}``."""
    if len(files) > limits.max_entries:
        raise DraftArchiveError(f"the draft holds more than {limits.max_entries} entries ({len(files)} files)")
    total = 0
    for name, content in files.items():
        shown = name if len(name) <= 80 else name[:80] + "..."
        size = len(name.encode("utf-8", "surrogateescape"))
        if size > limits.max_name_bytes:
            raise DraftArchiveError(f"{shown}: a path of {size} bytes is longer than {limits.max_name_bytes} bytes")
        if len(content) > limits.max_entry_bytes:
            raise DraftArchiveError(
                f"{shown}: {len(content)} bytes; one file may have at most {limits.max_entry_bytes}"
            )
        total += len(content)
        if total > limits.max_total_bytes:
            raise DraftArchiveError(f"{shown}: the draft is larger than {limits.max_total_bytes} bytes")


__all__ = ["ArchiveLimits", "DraftArchiveError", "check_file_map", "read_archive"]

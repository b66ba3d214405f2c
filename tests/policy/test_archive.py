"""Draft archives are read with bounded memory and entry count: crafted archives (a GNU long name, a huge pax
header, many entries, decompression bombs, links and devices) are refused with an error naming the entry,
and reading them never holds more than a few MiB (measured with tracemalloc in this process)."""

from __future__ import annotations

import io
import tarfile
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from policy.archive import ArchiveLimits
from policy.bundle import files_from_archive, files_from_mapping
from policy.errors import PolicyDraftError
from tests.policy.archive_craft import (
    bzipped,
    end,
    gzipped,
    header,
    padded,
    regular,
    repeated,
    small_policy,
)

MIB = 1 << 20
PEAK_LIMIT = 12 * MIB  # the archives below unpack to 64 MiB and more; reading them must stay far below


def peak_while(fn: Callable[[], object]) -> tuple[int, BaseException | None]:
    """(peak bytes allocated by Python while ``fn`` ran, the exception it raised)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    error: BaseException | None = None
    try:
        fn()
    except BaseException as exc:  # returned to the test
        error = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error


def refused(archive: bytes, **limits: int) -> tuple[str, int]:
    peak, error = peak_while(lambda: files_from_archive(archive, limits=ArchiveLimits(**limits)))
    assert isinstance(error, PolicyDraftError), f"expected a PolicyDraftError, got {error!r}"
    message = str(error)
    assert len(message) < 400, f"the error must stay short and readable: {message[:400]}..."
    return message, peak


def gnu_long_name(size: int) -> Iterator[bytes]:
    yield header("././@LongLink", size, b"L", gnu=True)
    yield from repeated(b"a", size)
    yield from regular("rego/x.rego", b"package x\n")
    yield from end()


def test_a_gnu_long_name_of_64_mib_is_refused_before_it_is_read() -> None:
    archive = gzipped(gnu_long_name(64 * MIB))
    assert len(archive) < 200_000  # a small upload
    message, peak = refused(archive)
    assert "GNU long name" in message and "entry 1" in message and str(64 * MIB) in message
    assert peak < PEAK_LIMIT, f"reading the archive allocated {peak / MIB:.1f} MiB"


def test_a_huge_pax_header_is_refused_naming_it() -> None:
    def parts() -> Iterator[bytes]:
        yield header("PaxHeaders/rego/x.rego", 64 * MIB, b"x")
        yield from repeated(b"c", 64 * MIB)
        yield from regular("rego/x.rego", b"package x\n")
        yield from end()

    message, peak = refused(gzipped(parts()))
    assert "PaxHeaders/rego/x.rego" in message and "pax" in message and "65536" in message
    assert peak < PEAK_LIMIT


def test_a_long_path_is_refused_naming_its_start() -> None:
    name = "rego/" + "d" * 300 + ".rego"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        tar.addfile(info, io.BytesIO(b""))
    message, _ = refused(buffer.getvalue())
    assert "rego/dddd" in message and "310 bytes" in message and "255" in message


def test_many_entries_are_refused_after_the_limit_without_reading_the_rest() -> None:
    def parts() -> Iterator[bytes]:
        for i in range(20_000):  # directories are entries too
            yield header(f"rego/d{i}/", 0, b"5")
        yield from end()

    archive = gzipped(parts())
    started = time.monotonic()
    message, peak = refused(archive)
    assert time.monotonic() - started < 10
    assert "more than 2000 entries" in message and "rego/d2000" in message
    assert peak < PEAK_LIMIT


def test_a_gzip_bomb_entry_is_refused_by_its_declared_size() -> None:
    def parts() -> Iterator[bytes]:
        yield from small_policy()
        yield header("data/bomb.json", 256 * MIB)
        yield from repeated(b"\0", 256 * MIB, chunk=8 * MIB)
        yield from end()

    archive = gzipped(parts())
    assert len(archive) < MIB
    started = time.monotonic()
    message, peak = refused(archive)
    assert time.monotonic() - started < 10  # refused from the header: the 256 MiB are never inflated
    assert "data/bomb.json" in message and str(256 * MIB) in message and str(4 * MIB) in message
    assert peak < PEAK_LIMIT


def test_files_that_add_up_past_the_total_are_refused_naming_the_one_that_crosses_it() -> None:
    def parts() -> Iterator[bytes]:
        for i in range(6):
            yield header(f"data/f{i}.json", 3 * MIB)
            yield from repeated(b" ", 3 * MIB)
        yield from end()

    message, peak = refused(bzipped(parts()))
    assert "data/f5.json" in message and "unpacks to more than" in message and str(16 * MIB) in message
    assert peak < 2 * PEAK_LIMIT  # the draft's own files (15 MiB here) are kept, nothing more


def test_extended_headers_count_toward_the_total() -> None:
    def parts() -> Iterator[bytes]:
        record = b"%d comment=%s\n"
        for i in range(400):  # 400 x 60 KiB of pax comments on tiny files: 24 MiB of headers
            body = b"c" * (60 * 1024)
            text = record % (len(body) + 100, body)
            yield header(f"PaxHeaders/data/{i}.json", len(text), b"x")
            yield padded(text)
            yield from regular(f"data/{i}.json", b"{}")
        yield from end()

    message, peak = refused(gzipped(parts()))
    assert "unpacks to more than" in message
    assert peak < PEAK_LIMIT


@pytest.mark.parametrize(
    ("typeflag", "linkname", "kind"),
    [
        (b"2", "/etc/passwd", "symbolic link"),
        (b"1", "rego/a.rego", "hard link"),
        (b"3", "", "character device"),
        (b"4", "", "block device"),
        (b"6", "", "FIFO"),
    ],
)
def test_links_and_devices_are_refused_naming_the_entry_and_its_kind(typeflag: bytes, linkname: str, kind: str) -> None:
    def parts() -> Iterator[bytes]:
        yield from small_policy()
        yield header("rego/evil.rego", 0, typeflag, linkname=linkname)
        yield from end()

    message, _ = refused(gzipped(parts()))
    assert "rego/evil.rego" in message and kind in message and "regular files and directories" in message


def test_a_valid_archive_still_reads_in_every_supported_compression() -> None:
    for archive in (
        gzipped([*small_policy(), *end()]),
        bzipped([*small_policy(), *end()]),
        b"".join([*small_policy(), *end()]),
    ):
        files = files_from_archive(archive)
        assert files == {"data/x.json": b"{}", "rego/residency/decision.rego": b"package residency\n"}


def test_a_file_map_has_the_same_limits() -> None:
    too_many = {f"data/{i}.json": "{}" for i in range(2001)}
    with pytest.raises(PolicyDraftError, match="more than 2000 entries"):
        files_from_mapping(too_many)
    with pytest.raises(PolicyDraftError, match=r"rego/xxxx.*longer than 255 bytes"):
        files_from_mapping({"rego/" + "x" * 300 + ".rego": "", "data/a.json": "{}"})
    with pytest.raises(PolicyDraftError, match=r"data/big.json: 4194305 bytes.*4194304"):
        files_from_mapping({"rego/a.rego": "", "data/big.json": " " * (4 * MIB + 1)})

"""The ingest's thread names, given to the operating system too, so that ``top -H``, ``ps -L -o comm``,
``/proc/<pid>/task`` and the benchmark's per-thread CPU (``bench.ingest.threads``) tell the flush thread, the region
writers, the control writer and paho's network thread apart. CPython 3.11 names threads only for Python; Linux takes
a name of at most 15 bytes per thread (``prctl(PR_SET_NAME)``). Elsewhere this does nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

_PR_SET_NAME = 15
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform.startswith("linux") else None


def name_os_thread(name: str | None = None) -> None:
    """Give the calling thread ``name`` (default: its Python name) at the OS level, cut to 15 bytes. Never raises:
    a name is a convenience for whoever looks at the threads."""
    if _libc is None:
        return
    wanted = (name or threading.current_thread().name).encode("utf-8", "replace")[:15]
    try:
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(wanted), 0, 0, 0)
    except (AttributeError, OSError):  # no prctl in this libc
        return

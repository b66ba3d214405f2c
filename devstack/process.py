"""Child processes that run unprivileged when we are root, and die with their parent."""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from devstack.errors import ComponentError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def run_as_user(preferred: Sequence[str]) -> str | None:
    """When root, the first existing unprivileged account of ``preferred``; None when not root.

    PostgreSQL refuses to run as root, and services should not need it, so as root every
    component runs as its Debian package's own account (postgres, mosquitto) or ``nobody``.
    """
    if os.geteuid() != 0:
        return None
    for name in (*preferred, "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ComponentError("process", f"running as root and none of {[*preferred, 'nobody']} exists")


def make_owned_dir(prefix: str, user: str | None, parent: Path | None = None) -> Path:
    """A new private directory, owned by ``user`` when given (so a dropped-privilege child can use it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


class AsUser(TypedDict, total=False):
    """subprocess's arguments that run a child as another account (none: as ourselves)."""

    user: int
    group: int
    extra_groups: list[int]


def as_user(user: str | None) -> AsUser:
    """The arguments that run a child as ``user`` (its uid and primary gid, no supplementary groups)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def spawn(
    argv: Sequence[str],
    *,
    user: str | None,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so a terminal's Ctrl-C reaches only us), logging to a file."""
    log = open(log_file, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            **as_user(user),
        )
    except OSError as exc:
        raise ComponentError(str(argv[0]), f"cannot start: {exc.strerror}") from None
    finally:
        log.close()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal a child and wait for it; SIGKILL it if it does not exit in time."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

"""py-spy sampling of an ingest process under load, and a text summary of where its time goes.

``Sampler`` runs ``py-spy record --format raw`` (collapsed stacks) against a pid until stopped; two
recordings are taken together: ``cpu`` (threads on CPU only) and ``wall`` (``--idle``: every thread,
waiting included, so the flush thread's time in PostgreSQL round trips shows up). ``summarize()``
reads collapsed stacks and lists threads, top functions by self and by inclusive samples.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
REPO_ROOT = Path(__file__).resolve().parents[2]
_OWN = ("ingest/", "wire/", "policy/")


def pyspy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.exists():
        return str(candidate)
    return shutil.which("py-spy")


class Sampler:
    def __init__(self, pid: int, out_dir: Path, name: str, rate: int = 100) -> None:
        exe = pyspy()
        if exe is None:
            raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
        out_dir.mkdir(parents=True, exist_ok=True)
        self.files = {
            "cpu": out_dir / f"{name}.cpu.txt",
            "wall": out_dir / f"{name}.wall.txt",
            "svg": out_dir / f"{name}.cpu.svg",
        }
        base = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking", "--threads"]
        self.procs = [
            subprocess.Popen(
                [*base, "--format", "raw", "-o", str(self.files["cpu"])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            ),
            subprocess.Popen(
                [*base, "--idle", "--format", "raw", "-o", str(self.files["wall"])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            ),
            subprocess.Popen(
                [*base, "--format", "flamegraph", "-o", str(self.files["svg"])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            ),
        ]

    def stop(self) -> dict[str, Path]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return {k: v for k, v in self.files.items() if v.exists()}


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file})"


def summarize(path: Path, top: int = 25) -> str:
    """Threads by samples; functions by self and by inclusive samples (each stack counted once per function)."""
    threads: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
        body = frames[1:] if thread != "?" else frames
        threads[thread] += n
        names = [_short(f) for f in body]
        if names:
            self_[names[-1]] += n
        for name in set(names):
            incl[name] += n
    if total == 0:
        return f"{path.name}: no samples\n"
    out = [f"{path.name}: {total} samples"]
    out.append("  threads:")
    out += [f"    {100 * n / total:5.1f}%  {t}" for t, n in threads.most_common(8)]
    out.append(f"  top {top} by self samples:")
    out += [f"    {100 * n / total:5.1f}%  {f}" for f, n in self_.most_common(top)]
    out.append(f"  top {top} by inclusive samples:")
    out += [f"    {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out) + "\n"


def _parse(frame: str) -> tuple[str, str, int]:
    m = _FRAME.match(frame)
    if not m:
        return frame, "", 0
    return m.group("func"), m.group("file"), int(m.group("line") or 0)


_SOURCE: dict[str, list[str]] = {}


def _source_line(file: str, line: int) -> str:
    if file not in _SOURCE:
        path = Path(file) if Path(file).is_absolute() else REPO_ROOT / file
        try:
            _SOURCE[file] = path.read_text().splitlines()
        except OSError:
            _SOURCE[file] = []
    lines = _SOURCE[file]
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _stage(funcs: list[str]) -> str:
    """A coarse stage of the flush loop for one stack (function names, outermost first)."""
    has = set(funcs)
    if "Consumer._collect" in has:
        return "waiting for messages (queue.get)"
    if "RegionWriter.write" in has:
        if any(f.startswith(("Copy.", "BinaryFormatter.", "LibpqWriter.")) or f == "Cursor.copy" for f in funcs):
            return "region store: COPY rows (adapt + send)"
        if "Transaction.__exit__" in has:
            return "region store: COMMIT"
        return "region store: other statements (staging DDL, merge + rollups)"
    if any(f.startswith("QuarantineWriter.") for f in funcs):
        return "quarantine store"
    if "ControlWriter.write" in has:
        return "control store transaction (decisions, sequences, progress)"
    if "Router.route" in has:
        if "decode_batch" in has:
            return "route: decode payload (json.loads + pydantic Batch)"
        if any(f.endswith(".decide") or f == "Router._flow" for f in funcs):
            return "route: policy input (Flow) + decision (cache)"
        if "Router._apply" in has or "_split" in has:
            return "route: build row tuples"
        return "route: other (decision records, model_dump, uuid5)"
    if any("ack" in f.lower() for f in funcs if f.startswith("Consumer.") or f.startswith("Client.")):
        return "acknowledge"
    if any(f.startswith("PipelineStats.") for f in funcs):
        return "stats"
    return "other"


def thread_breakdown(path: Path, thread_suffix: str = "ingest-flush", top: int = 20) -> str:
    """Where one thread's wall time goes (use the ``--idle`` recording): coarse stages, then the source
    lines of the deepest ingest/wire/policy frames."""
    stages: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    total = 0
    for raw in path.read_text(errors="replace").splitlines():
        stack, _, count = raw.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if not frames[0].endswith(thread_suffix):
            continue
        n = int(count)
        total += n
        parsed = [_parse(f) for f in frames[1:]]
        stages[_stage([p[0] for p in parsed])] += n
        own = [p for p in parsed if any(o in p[1] for o in _OWN)]
        if own:
            func, file, line = own[-1]
            leaf = parsed[-1][0]
            text = _source_line(file, line)[:70]
            lines[f"{file.split('/work/main/')[-1]}:{line} {func}: {text}  [-> {leaf}]"] += n
    if total == 0:
        return f"{path.name}: no samples of thread *{thread_suffix}\n"
    out = [f"{path.name}: thread *{thread_suffix}: {total} samples (wall clock, waiting included)", "  stages:"]
    out += [f"    {100 * n / total:5.1f}%  {s}" for s, n in stages.most_common()]
    out.append(f"  top {top} source lines (deepest ingest/wire/policy frame):")
    out += [f"    {100 * n / total:5.1f}%  {s}" for s, n in lines.most_common(top)]
    return "\n".join(out) + "\n"

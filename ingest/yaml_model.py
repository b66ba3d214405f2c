"""A YAML file validated into a pydantic model, with errors that name the file, the line when it can be
found, and the field: shared by the registry (:mod:`ingest.registry`) and the broker's identities file
(:mod:`broker.identities`)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_model(path: Path, model: type[M], *, what: str, not_a_mapping: str, error: type[Exception]) -> M:
    """Read ``path``, parse it as YAML and validate it as ``model``.

    Every failure raises ``error(message)``: ``<path>: cannot read <what>: ...``, ``<path>[:line]: not valid
    YAML: ...``, ``<path>: <not_a_mapping>`` or ``<path>[:line]: <dotted.field>: <message>``. A model-level
    validator that names the field itself (``"dotted.path: message"``) is reported at that field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise error(f"{path}{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: {not_a_mapping}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc_parts: tuple[int | str, ...] = tuple(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc_parts and ": " in msg:  # cross-reference errors carry their path in the message
            dotted, msg = msg.split(": ", 1)
            loc_parts = tuple(dotted.split("."))
        loc = ".".join(str(p) for p in loc_parts) or "(top level)"
        line = line_of(text, loc_parts)
        where = f":{line}" if line else ""
        raise error(f"{path}{where}: {loc}: {msg}") from None


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line number of the deepest key of ``loc`` that appears in the YAML text."""
    line_no: int | None = None
    start = 0
    lines = text.splitlines()
    for key in loc:
        if not isinstance(key, str):
            continue
        for i in range(start, len(lines)):
            stripped = lines[i].lstrip()
            if stripped.startswith(f"{key}:") or stripped.startswith(f"- {key}:"):
                line_no, start = i + 1, i + 1
                break
    return line_no

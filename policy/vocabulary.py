"""The decision contract's closed vocabularies, as the policy's data files state them, for Python code.

The policy reads ``data/vocabulary.json`` as ``data.residency_data.vocabulary`` and ``data/countries.json``
as ``data.residency_data.countries``; this module reads the same files, so that the code which must speak
the contract (the device registry: :mod:`ingest.registry`) takes its codes from the policy instead of
keeping a copy. Adding a safeguard code or a jurisdiction is then a change under ``policy/`` only.

:data:`VOCABULARY` is the vocabulary of the policy shipped with the code (``policy/data``), read once at
import. :func:`load_vocabulary` reads another policy directory's (a draft's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy.errors import PolicyLoadError

__all__ = ["DEFAULT_POLICY_DIR", "VOCABULARY", "Vocabulary", "load_vocabulary"]

DEFAULT_POLICY_DIR = Path(__file__).resolve().parent
"""The policy shipped with the code (the same directory as :data:`policy.engine.DEFAULT_POLICY_DIR`)."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The closed sets of ``data/vocabulary.json`` and ``data/countries.json`` (file order kept)."""

    categories: tuple[str, ...]
    safeguards: tuple[str, ...]
    """Every safeguard code a flow (and a registry site) may list, in the order of the file."""
    recipient_flags: tuple[str, ...]
    entity_flags: tuple[str, ...]
    transforms_applied: tuple[str, ...]
    max_count: int
    countries: tuple[str, ...]
    """The ISO 3166-1 alpha-2 codes the policy knows (sorted); any other code is denied by it."""


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PolicyLoadError(f"{path}: cannot read the policy's vocabulary: {exc}") from exc
    if not isinstance(value, dict):
        raise PolicyLoadError(f"{path}: not a JSON object")
    return value


def load_vocabulary(policy_dir: Path = DEFAULT_POLICY_DIR) -> Vocabulary:
    """The vocabulary of the policy in ``policy_dir`` (its ``data/vocabulary.json`` and ``data/countries.json``);
    :class:`PolicyLoadError` names the file when one cannot be read or lacks a set."""
    data_dir = Path(policy_dir) / "data"
    vocab_file, countries_file = data_dir / "vocabulary.json", data_dir / "countries.json"
    vocab, countries = _read(vocab_file), _read(countries_file)
    try:
        return Vocabulary(
            categories=tuple(vocab["categories"]),
            safeguards=tuple(vocab["safeguards"]),
            recipient_flags=tuple(vocab["recipient_flags"]),
            entity_flags=tuple(vocab["entity_flags"]),
            transforms_applied=tuple(vocab["transforms_applied"]),
            max_count=int(vocab["max_count"]),
            countries=tuple(sorted(countries["codes"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyLoadError(f"{vocab_file} or {countries_file}: missing or malformed {exc}") from exc


VOCABULARY = load_vocabulary()
"""The vocabulary of the shipped policy (``policy/data``)."""

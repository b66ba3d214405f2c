"""The data subjects of one message: who the personal data in it is about. Pure: no I/O."""

from __future__ import annotations

from ingest.registry import Profile
from ingest.volumes.counter import subject_key
from wire import Batch

PERSONAL = "personal"
SENSITIVE = "sensitive_personal"


def subjects_of(batch: Batch, profile: Profile, site_id: str) -> dict[bytes, bool]:
    """subject -> sensitive, for every reading of the batch.

    A subject is one distinct value of a field declared ``personal`` (the operator badge), pseudonymised or
    not; a reading carrying a ``sensitive_personal`` value makes its subjects sensitive. A sensitive
    reading with no personal value counts its sensitive values as its subjects (cautious: more, not fewer).
    """
    fields = profile.fields
    found: dict[bytes, bool] = {}
    for reading in batch.readings:
        people: list[object] = []
        sensitive_values: list[object] = []
        for name, value in reading.values.items():
            spec = fields.get(name)
            if spec is None or value is None:
                continue
            if spec.category == PERSONAL:
                people.append(value)
            elif spec.category == SENSITIVE:
                sensitive_values.append(value)
        if not people and not sensitive_values:
            continue
        sensitive = bool(sensitive_values)
        for subject in people or sensitive_values:
            key = subject_key(site_id, subject)
            found[key] = found.get(key, False) or sensitive
    return found

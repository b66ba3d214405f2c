"""A draft that allows everything everywhere and whose only Rego test is trivial: it loads and passes its own
tests, so only the platform's invariants (``policy/invariants.yaml``) can refuse it."""

from __future__ import annotations

from pathlib import Path

ALLOW_ALL_REGO = """package residency

decide(_) := {
\t"allow": true, "localization": "none", "requires": [], "transforms": {},
\t"reasons": ["allowed everywhere"], "policy_revision": data.residency_meta.revision,
}

decision := decide(input)
"""

TRIVIAL_TEST = """package residency_test

import data.residency

test_it_decides if {
\tresidency.decide({"origin": "DE", "destination": "DE", "category": "machine"}).allow
}
"""


def write_allow_all(target: Path) -> Path:
    (target / "rego" / "residency").mkdir(parents=True, exist_ok=True)
    (target / "data").mkdir(parents=True, exist_ok=True)
    (target / "rego" / "residency" / "decision.rego").write_text(ALLOW_ALL_REGO)
    (target / "rego" / "residency" / "decision_test.rego").write_text(TRIVIAL_TEST)
    (target / "data" / "vocabulary.json").write_text('{"_about": "allows everything"}\n')
    return target

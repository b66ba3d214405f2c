"""What the policy runtime's tests share: flows, policy directory edits, a runtime, the recorded activations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingest.policy_runtime import PolicyRuntime
from policy import DEFAULT_POLICY_DIR, Flow

DE_TO_GB = Flow(origin="DE", destination="GB", category="personal")
DE_TO_US = Flow(origin="DE", destination="US", category="personal")


def copy_policy(target: Path) -> Path:
    for sub in ("rego", "data"):
        shutil.copytree(DEFAULT_POLICY_DIR / sub, target / sub)
    return target


def drop_uk_adequacy(policy_dir: Path, *, fix_tests: bool) -> None:
    """Data edit: the EU's UK adequacy decision is gone. With ``fix_tests`` the decision case that pins it is
    updated too; without, that case fails and the candidate must be refused."""
    path = policy_dir / "data" / "adequacy.json"
    data = json.loads(path.read_text())
    data["EU_ADEQ"]["entries"] = [e for e in data["EU_ADEQ"]["entries"] if not (isinstance(e, dict) and e["c"] == "GB")]
    path.write_text(json.dumps(data, indent=2))
    if fix_tests:
        test = policy_dir / "rego" / "residency" / "eu_test.rego"
        source = test.read_text()
        start = source.index("case_eu_personal_to_uk_adequate_until_2031 := {")
        end = source.index("\n}\n", start) + 3
        test.write_text(
            source[:start]
            + source[end:]
            + (
                "\ncase_eu_personal_to_uk_no_longer_adequate := {\n"
                '\t"flow": {"origin": "DE", "destination": "GB", "category": "personal"},\n'
                '\t"expect": {"allow": false},\n}\n'
            )
        )


def make_runtime(control: str, policy_dir: Path, replica: str = "ingest-a", **kw: Any) -> PolicyRuntime:
    return PolicyRuntime(
        kind="embedded",
        policy_dir=policy_dir,
        control_dsn=control,
        replica=replica,
        cache_size=kw.pop("cache_size", 64),
        watch_s=kw.pop("watch_s", 0),
        **kw,
    )


def activations(control: str) -> list[dict[str, Any]]:
    with psycopg.connect(control, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM policy_activations ORDER BY id").fetchall()

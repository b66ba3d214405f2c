from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policy import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine


@pytest.fixture(scope="session")
def engine() -> EmbeddedPolicyEngine:
    return EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A private copy of rego/ and data/ that a test may edit like a compliance officer would."""
    target = tmp_path / "policy"
    for sub in ("rego", "data"):
        shutil.copytree(DEFAULT_POLICY_DIR / sub, target / sub)
    return target

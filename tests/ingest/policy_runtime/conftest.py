from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.policy_runtime.policies import copy_policy


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return copy_policy(tmp_path / "policy")

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


@pytest.fixture(scope="session")
def real_opa():
    """The policy directory in OPA's own Go engine (tests/policy/real_opa.py): the second engine of every
    parity test. Missing libraries fail the test with the command that installs them; nothing is skipped."""
    from tests.policy.real_opa import RealOpaEngine

    opa = RealOpaEngine(DEFAULT_POLICY_DIR)
    yield opa
    opa.close()


@pytest.fixture(params=["rego-cpp", "opa"])
def both_engines(request, engine, real_opa):
    """Each test using it runs twice: with the embedded engine (rego-cpp) and with OPA's Go engine."""
    return engine if request.param == "rego-cpp" else real_opa

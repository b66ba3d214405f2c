"""The policy runtime's errors: what the API turns into 422, 404 and 409."""

from __future__ import annotations

from policy.errors import PolicyError


class ActivationRefused(PolicyError):
    """A candidate policy did not load or did not pass its Rego tests; the running revision stays."""

    def __init__(self, revision: str, error: str) -> None:
        super().__init__(f"policy {revision} refused: {error}")
        self.revision = revision
        self.error = error


class DraftNotFoundError(PolicyError):
    """No draft with that revision was uploaded."""


class ManagedByOpaError(PolicyError):
    """With INGEST_POLICY_ENGINE=opa, policies are activated by OPA bundles, not by this service."""


__all__ = ["ActivationRefused", "DraftNotFoundError", "ManagedByOpaError"]

"""A policy engine that asks an OPA server through its REST Data API.

``POST /v1/data/residency/decision`` with ``{"input": <flow>}`` answers ``{"result": <decision>}``; a missing
``result`` means the document is undefined. The request goes through the ``opa-python-client`` package
(``OpaClient.query_rule`` is exactly that Data API POST). The revision comes from the bundle manifest
OPA exposes at ``GET /v1/data/system/bundles`` when the policy was loaded as a bundle (see
``python -m policy bundle``), else from the decisions' ``policy_revision``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client.opa import OpaClient

from policy.engine import validate_decision
from policy.errors import PolicyEvaluationError, PolicyUnavailableError
from policy.models import Decision, Flow

UNKNOWN_REVISION = "unknown"


class OpaPolicyEngine:
    """Decisions from an OPA server (e.g. a sidecar fed by policy bundles). Thread-safe."""

    def __init__(
        self,
        url: str,
        path: str = "residency/decision",
        timeout: float = 2.0,
        bundle_name: str | None = None,
        revision_ttl: float = 5.0,
    ):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL for OPA: {url!r}")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 8181)
        self.path = path.strip("/")
        self.timeout = timeout
        self.bundle_name = bundle_name
        self.revision_ttl = revision_ttl
        self._client = OpaClient(
            host=self.host, port=self.port, ssl=parts.scheme == "https", timeout=timeout, retries=0
        )
        self._lock = threading.Lock()
        self._revision = UNKNOWN_REVISION
        self._from_bundle = False
        self._revision_checked = float("-inf")

    def _where(self) -> str:
        return f"OPA at {self.host}:{self.port}"

    def document(self, path: str, value: Any) -> Any:
        """Another document of the policy (e.g. ``residency/raw_processing``) for ``value`` as input."""
        return self._post(value, path.strip("/"))

    def _post(self, flow_input: Any, path: str | None = None) -> Any:
        path = path or self.path
        try:
            body = self._client.query_rule(input_data=flow_input, package_path=path)
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            detail = exc.response.text[:300] if exc.response is not None else str(exc)
            if status in (502, 503, 504):  # a proxy or OPA itself says it cannot answer now
                raise PolicyUnavailableError(f"{self._where()} answered {status}: {detail}") from exc
            raise PolicyEvaluationError(f"{self._where()} rejected POST /v1/data/{path} ({status}): {detail}") from exc
        except requests.exceptions.JSONDecodeError as exc:  # also a RequestException: must come first
            raise PolicyEvaluationError(f"{self._where()} answered with something that is not JSON") from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise PolicyUnavailableError(f"{self._where()} is unreachable: {type(exc).__name__}") from exc
        except requests.exceptions.RequestException as exc:
            raise PolicyUnavailableError(f"{self._where()}: {exc}") from exc
        except ValueError as exc:
            raise PolicyEvaluationError(f"{self._where()} answered with something that is not JSON") from exc
        if not isinstance(body, dict) or "result" not in body:
            raise PolicyEvaluationError(f"{self._where()}: data.{path.replace('/', '.')} is undefined")
        return body["result"]

    def _bundle_revision(self) -> str | None:
        try:
            body = self._client.get_data("system/bundles")
        except Exception:
            return None
        bundles = body.get("result") if isinstance(body, dict) else None
        if not isinstance(bundles, dict):
            return None
        names = [self.bundle_name] if self.bundle_name else sorted(bundles)
        for name in names:
            manifest = (bundles.get(name) or {}).get("manifest") or {}
            revision = manifest.get("revision")
            if isinstance(revision, str) and revision:
                return revision
        return None

    @property
    def revision(self) -> str:
        """The bundle revision (refreshed at most every ``revision_ttl`` seconds), else the last decision's."""
        now = time.monotonic()
        with self._lock:
            stale = now - self._revision_checked >= self.revision_ttl
            if stale:
                self._revision_checked = now
        if stale:
            found = self._bundle_revision()
            if found:
                with self._lock:
                    self._revision = found
                    self._from_bundle = True
        with self._lock:
            return self._revision

    def refresh_revision(self) -> str:
        """Ask OPA for the bundle revision now (ignoring ``revision_ttl``); the known revision if it has none.

        The ingest's policy runtime calls this from its watcher thread and builds the engine with
        ``revision_ttl=inf``, so that the decision path never waits on this request.
        """
        found = self._bundle_revision()
        with self._lock:
            self._revision_checked = time.monotonic()
            if found:
                self._revision = found
                self._from_bundle = True
            return self._revision

    def decide(self, flow: Flow) -> Decision:
        decision = validate_decision(self._post(flow.to_input()), f"{self._where()} {self.path}")
        if decision.policy_revision not in ("", "unset"):
            with self._lock:
                if not self._from_bundle:
                    self._revision = decision.policy_revision
        return decision

    def decide_many(self, flows: Sequence[Flow]) -> list[Decision]:
        return [self.decide(flow) for flow in flows]

    def close(self) -> None:
        self._client.close_connection()

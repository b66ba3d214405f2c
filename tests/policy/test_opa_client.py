"""OpaPolicyEngine against a stand-in OPA server that implements the documented REST Data API."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from policy import (
    CachedPolicyEngine,
    EmbeddedPolicyEngine,
    Flow,
    OpaPolicyEngine,
    PolicyEvaluationError,
    PolicyUnavailableError,
    load_engine,
)

BUNDLE_REVISION = "sha256:" + "ab" * 32


class FakeOpa:
    """A fake standing in for an OPA server, because no OPA binary can be installed here.

    It implements the parts of OPA's documented REST API the client uses:
    ``POST /v1/data/{path}`` with ``{"input": ...}`` answers ``{"result": ...}`` (no ``result`` key when the
    document is undefined), ``GET /v1/data/system/bundles`` answers the bundle manifests, ``GET /health``.
    Decisions are evaluated by the embedded regopy engine, so both engines run the same Rego.
    """

    def __init__(self, engine: EmbeddedPolicyEngine, bundle_revision: str | None = BUNDLE_REVISION):
        self.engine = engine
        self.bundle_revision = bundle_revision
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: object) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                fake.requests.append(("GET", self.path))
                if self.path == "/health":
                    self._send(200, {})
                elif self.path == "/v1/data/system/bundles":
                    bundles = {}
                    if fake.bundle_revision:
                        bundles["residency"] = {
                            "manifest": {"revision": fake.bundle_revision, "roots": ["residency", "residency_data"]}
                        }
                    self._send(200, {"result": bundles})
                else:
                    self._send(404, {"code": "resource_not_found", "message": self.path})

            def do_POST(self):
                fake.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"code": "invalid_parameter", "message": "body is not JSON"})
                    return
                if self.path == "/v1/data/residency/decision":
                    self._send(200, {"result": fake.engine.evaluate(body.get("input"))})
                else:
                    self._send(200, {})  # undefined document: OPA omits "result"

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpa:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def fake_opa(engine) -> Iterator[FakeOpa]:
    with FakeOpa(engine) as fake:
        yield fake


FLOWS = [
    Flow(origin="DE", destination="US", category="machine"),
    Flow(origin="DE", destination="US", category="personal"),
    Flow(origin="DE", destination="US", category="personal", recipient={"dpf_certified": True}),
    Flow(origin="FR", destination="DE", category="personal"),
    Flow(origin="CN", destination="US", category="machine"),
    Flow(origin="CN", destination="SG", category="personal", entity={"ciio": True}),
    Flow(origin="CN", destination="DE", category="personal", volume={"individuals_ytd": 100000}),
    Flow(origin="CN", destination="DE", category="core"),
    Flow(origin="US", destination="DE", category="personal"),
    Flow(origin="US", destination="CN", category="sensitive_personal", volume={"sensitive_individuals_ytd": 5000}),
    Flow(origin="VN", destination="SG", category="personal", safeguards=["VN_TIA_FILED"]),
    Flow(origin="SG", destination="US", category="personal"),
    Flow(origin="RU", destination="DE", category="personal"),
    Flow(origin="KR", destination="DE", category="personal"),
    Flow(origin="XX", destination="DE", category="bogus"),
]


def test_opa_and_embedded_engines_agree(engine, fake_opa):
    opa = OpaPolicyEngine(fake_opa.url)
    assert opa.decide_many(FLOWS) == engine.decide_many(FLOWS)
    posts = [path for method, path in fake_opa.requests if method == "POST"]
    assert posts == ["/v1/data/residency/decision"] * len(FLOWS)


def test_revision_comes_from_the_bundle_manifest(fake_opa):
    opa = OpaPolicyEngine(fake_opa.url)
    assert opa.revision == BUNDLE_REVISION
    assert ("GET", "/v1/data/system/bundles") in fake_opa.requests


def test_revision_falls_back_to_the_decision(engine):
    with FakeOpa(engine, bundle_revision=None) as fake:
        opa = OpaPolicyEngine(fake.url)
        opa.decide(FLOWS[0])
        assert opa.revision == engine.revision


def test_undefined_document_is_an_evaluation_error(fake_opa):
    opa = OpaPolicyEngine(fake_opa.url, path="residency/nothing_here")
    with pytest.raises(PolicyEvaluationError, match="undefined"):
        opa.decide(FLOWS[0])


def test_unreachable_opa_names_the_host():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    opa = OpaPolicyEngine(f"http://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(PolicyUnavailableError, match=f"127.0.0.1:{port}"):
        opa.decide(FLOWS[0])


def test_load_engine_opa_with_cache(fake_opa):
    cached = load_engine("opa", opa_url=fake_opa.url, cache_size=8)
    assert isinstance(cached, CachedPolicyEngine)
    first = cached.decide(FLOWS[1])
    second = cached.decide(FLOWS[1])
    assert first == second and not first.allow
    assert cached.stats()["hits"] == 1
    assert sum(1 for m, _ in fake_opa.requests if m == "POST") == 1


def test_bad_url_is_rejected():
    with pytest.raises(ValueError):
        OpaPolicyEngine("ftp://example")

"""OpaPolicyEngine against a stand-in OPA server that implements the documented REST Data API."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from policy import (
    CachedPolicyEngine,
    Flow,
    OpaPolicyEngine,
    PolicyEvaluationError,
    PolicyUnavailableError,
    load_engine,
)
from tests.policy.flowset import generated_flows

BUNDLE_REVISION = "sha256:" + "ab" * 32


class FakeOpa:
    """A stand-in for an OPA server's HTTP layer, because no OPA binary can be installed here.

    It implements the parts of OPA's documented REST API the client uses:
    ``POST /v1/data/{path}`` with ``{"input": ...}`` answers ``{"result": ...}`` (no ``result`` key when the
    document is undefined; HTTP 500 ``internal_error`` when evaluation fails, as OPA does for an
    ``eval_conflict_error``), ``GET /v1/data/system/bundles`` answers the bundle manifests, ``GET /health``.
    Decisions are evaluated by OPA's own Go engine (``real_opa``: the ``rego`` package an OPA server runs),
    so only the HTTP server around it is not OPA's. ``mode`` makes it misbehave like a real server can:
    ``"500"`` (OPA's internal_error), ``"503"``, ``"slow"`` (answers after ``delay`` seconds),
    ``"not_json"``, ``"not_object"`` (a result that is not a decision).
    """

    def __init__(self, engine: Any, bundle_revision: str | None = BUNDLE_REVISION):
        self.engine = engine
        self.bundle_revision = bundle_revision
        self.requests: list[tuple[str, str]] = []
        self.inputs: list[object] = []
        self.mode = "normal"
        self.delay = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like OPA: one connection for a run of decisions
            disable_nagle_algorithm = True

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
                if fake.mode == "slow":
                    time.sleep(fake.delay)
                elif fake.mode == "500":
                    self._send(500, {"code": "internal_error", "message": "eval_conflict_error: complete rules"})
                    return
                elif fake.mode == "503":
                    self._send(503, {"code": "unavailable", "message": "bundle not activated"})
                    return
                elif fake.mode == "not_json":
                    payload = b"<html>proxy error</html>"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                elif fake.mode == "not_object":
                    self._send(200, {"result": ["not", "a", "decision"]})
                    return
                if self.path == "/v1/data/residency/decision":
                    fake.inputs.append(body.get("input"))
                    try:
                        result = fake.engine.evaluate(body.get("input"))
                    except PolicyEvaluationError as exc:
                        self._send(500, {"code": "internal_error", "message": str(exc)})
                        return
                    self._send(200, {"result": result})
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
def fake_opa(real_opa) -> Iterator[FakeOpa]:
    with FakeOpa(real_opa) as fake:
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


def test_revision_falls_back_to_the_decision(real_opa):
    with FakeOpa(real_opa, bundle_revision=None) as fake:
        opa = OpaPolicyEngine(fake.url)
        opa.decide(FLOWS[0])
        assert opa.revision == real_opa.revision


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


# --- wire parity on a large generated set -------------------------------------------------------------


def test_opa_rest_and_embedded_agree_on_every_generated_flow(engine, real_opa):
    """Every flow of a generated set across all jurisdictions x categories x safeguards, flags, purposes,
    transforms and volume boundaries gets the identical decision through the OPA Data API client (JSON
    over HTTP both ways, evaluated by OPA's engine) as from the embedded engine (rego-cpp), and the server
    receives exactly the flow's input."""
    flows = [Flow.parse(f) for f in generated_flows()]
    assert len(flows) > 650
    with FakeOpa(real_opa) as fake:
        through_opa = OpaPolicyEngine(fake.url, timeout=10.0).decide_many(flows)
    assert fake.inputs == [f.to_input() for f in flows]
    expected = engine.decide_many(flows)
    mismatches = [(f.to_input(), a, b) for f, a, b in zip(flows, through_opa, expected, strict=True) if a != b]
    assert not mismatches, mismatches[:3]
    assert {d.allow for d in expected} == {True, False}
    assert {d.localization for d in expected} == {"none", "primary_in_country", "in_country_only"}
    assert len({d.reasons[0] for d in expected}) > 100


@pytest.mark.parametrize(
    "raw",
    [{}, {"origin": "DE", "category": "machine"}],
    ids=["empty", "no destination"],
)
def test_an_opa_rest_caller_gets_the_same_deny_for_missing_fields(engine, fake_opa, raw):
    """Review defect 4: under OPA semantics these were allowed (rego-cpp denied them)."""
    import requests

    answer = requests.post(f"{fake_opa.url}/v1/data/residency/decision", json={"input": raw}, timeout=10).json()
    assert answer["result"]["allow"] is False
    assert answer["result"] == engine.evaluate(raw)


def test_an_evaluation_error_in_opa_is_a_policy_evaluation_error(policy_copy):
    """OPA answers 500 for an eval_conflict_error: deterministic for this input, so PolicyEvaluationError
    (the ingest quarantines the message), not PolicyUnavailableError (an outage: the ingest retries)."""
    from tests.policy.real_opa import RealOpaEngine

    (policy_copy / "rego" / "residency" / "zz_conflict.rego").write_text(
        'package residency\n\n_zz(x) := 1 if x.origin == "SG"\n\n_zz(x) := 2 if x.origin == "SG"\n\n'
        '_zz(x) := 3 if x.origin != "SG"\n\nzz_conflict := _zz(input)\n'
    )
    decision_rego = policy_copy / "rego" / "residency" / "decision.rego"
    decision_rego.write_text(
        decision_rego.read_text().replace(
            "decision := decide(input)", "decision := d if {\n\tzz_conflict\n\td := decide(input)\n}"
        )
    )
    broken = RealOpaEngine(policy_copy)
    with FakeOpa(broken) as fake:
        client = OpaPolicyEngine(fake.url)
        with pytest.raises(PolicyEvaluationError, match=r"\(500\).*eval_conflict_error"):
            client.decide(Flow(origin="SG", destination="US", category="machine"))
        assert client.decide(Flow(origin="DE", destination="US", category="machine")).allow
    broken.close()


# --- OPA behaviours the client must handle ------------------------------------------------------------


def test_undefined_result_without_result_key_is_an_evaluation_error(fake_opa):
    opa = OpaPolicyEngine(fake_opa.url, path="residency/not_a_rule")
    with pytest.raises(PolicyEvaluationError, match=r"data\.residency\.not_a_rule is undefined"):
        opa.decide(FLOWS[0])


@pytest.mark.parametrize(
    ("mode", "error", "match"),
    [
        ("500", PolicyEvaluationError, r"rejected POST /v1/data/residency/decision \(500\).*eval_conflict_error"),
        ("503", PolicyUnavailableError, r"OPA at 127\.0\.0\.1:\d+ answered 503"),
        ("not_json", PolicyEvaluationError, "not JSON"),
        ("not_object", PolicyEvaluationError, "not an object"),
    ],
)
def test_server_errors_are_typed(fake_opa, mode, error, match):
    fake_opa.mode = mode
    with pytest.raises(error, match=match):
        OpaPolicyEngine(fake_opa.url).decide(FLOWS[0])


def test_timeout_is_unavailable_naming_the_host(fake_opa):
    fake_opa.mode, fake_opa.delay = "slow", 1.5
    opa = OpaPolicyEngine(fake_opa.url, timeout=0.3)
    started = time.monotonic()
    where = rf"OPA at 127\.0\.0\.1:{fake_opa.port}"
    with pytest.raises(PolicyUnavailableError, match=rf"{where} is unreachable: ReadTimeout"):
        opa.decide(FLOWS[0])
    assert time.monotonic() - started < 1.4  # no retries behind the caller's back


def test_refresh_revision_follows_a_new_bundle(fake_opa):
    opa = OpaPolicyEngine(fake_opa.url, revision_ttl=float("inf"))
    assert opa.revision == BUNDLE_REVISION
    fake_opa.bundle_revision = "sha256:" + "cd" * 32
    assert opa.revision == BUNDLE_REVISION  # ttl: not asked again on the decision path
    assert opa.refresh_revision() == "sha256:" + "cd" * 32
    assert opa.revision == "sha256:" + "cd" * 32

"""The dashboard in a real browser (headless Chromium over the DevTools protocol) against a real running
stack: what the pages show is compared with the API and the stores, and every page is screenshotted to
artifacts/screenshots/.

The stack (tests/browser/stack.py) holds: agent traffic of de-munich, us-detroit and vn-hanoi (gateways
offline after shutdown), 6.5 h of minute readings of cn-shenzhen-cnc-01 with batches 19-20 missing (gateway
online), one malformed payload quarantined in eu-central, and an uploaded draft policy.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.cdp import Browser
from tests.browser.stack import (
    AGENT_SITES,
    BACKFILL_BATCHES,
    BACKFILL_DEVICE,
    BACKFILL_READINGS,
    BACKFILL_SITE,
    MALFORMED,
    MISSING_SEQS,
    LiveStack,
)

pytestmark = pytest.mark.integration

BUCKET_S = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}


def digits(text: str) -> int:
    """A number as the page formats it (Intl.NumberFormat: '1,440')."""
    found = re.sub(r"[^\d]", "", text)
    assert found, f"no number in {text!r}"
    return int(found)


def js(value: Any) -> str:
    return json.dumps(value)


def console_errors(browser: Browser, *allowed: str) -> list[str]:
    return [line for line in browser.console if not any(a in line for a in allowed)]


# --- Live ------------------------------------------------------------------------------------------


def test_live_page_shows_what_the_stack_holds(browser: Browser, stack: LiveStack, screenshots: Path) -> None:
    browser.navigate(stack.signed_in(stack.base + "/dashboard?window=86400"))
    browser.wait_for(
        "!!document.querySelector('#flows table.matrix[data-window=\"86400\"]')"
        " && !!document.querySelector('[data-kpi=quarantine-held]')"
        " && document.querySelectorAll('#devices tr[data-device]').length > 0",
        what="live data",
    )

    # Flow matrix: every cell equals the /flows API, and CN -> cn-north equals the decision log.
    flows = stack.api("/flows", window_s=86400)
    expected: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for f in flows["flows"]:
        cell = expected[(f["origin_country"], f["region"])]
        cell[f["outcome"]] += f["decisions"]
        cell["readings"] += f["readings"]
    cells = browser.evaluate("""[...document.querySelectorAll('#flows tr[data-origin] td.cell:not(.empty)')]
        .map(td => ({origin: td.parentElement.dataset.origin, region: td.dataset.region,
            outcomes: Object.fromEntries([...td.querySelectorAll('[data-outcome]')]
                .map(p => [p.dataset.outcome, p.textContent])),
            readings: td.querySelector('[data-readings]').textContent}))""")
    shown = {
        (c["origin"], c["region"]): {
            **{o: digits(n) for o, n in c["outcomes"].items()},
            "readings": digits(c["readings"]),
        }
        for c in cells
    }
    assert shown == {key: {k: v for k, v in cell.items() if v} for key, cell in expected.items()}
    stored_cn = stack.sql(
        stack.control,
        "SELECT count(*) FROM decisions WHERE origin_country = 'CN' AND region = 'cn-north' AND outcome = 'stored'",
    )[0][0]
    assert stored_cn > 0 and shown[("CN", "cn-north")]["stored"] == stored_cn
    assert ("CN", "us-east") in shown and shown[("CN", "us-east")]["denied"] > 0  # personal data stays in China

    # Fleet, backlog and policy cards.
    kpi = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-kpi]')].map(c => "
        "[c.dataset.kpi, [c.querySelector('.value').textContent, c.title]]))"
    )
    devices = stack.api("/devices", limit=1000)["items"]
    status = {s: sum(1 for d in devices if d["status"] == s) for s in ("online", "offline", "unknown")}
    # the agents' sites went offline at shutdown, the backfill site is online, the demo's other sites never spoke
    registry = {d: dev.site for d, dev in stack.registry.devices.items()}
    assert status == {
        "online": sum(site == BACKFILL_SITE for site in registry.values()),
        "offline": sum(site in AGENT_SITES for site in registry.values()),
        "unknown": sum(site not in (*AGENT_SITES, BACKFILL_SITE) for site in registry.values()),
    }
    assert status["online"] == 2 and status["offline"] == 6 and status["unknown"] >= 4
    assert digits(kpi["devices-online"][0]) == status["online"]
    assert digits(kpi["devices-offline"][0]) == status["offline"]
    assert digits(kpi["devices-unknown"][0]) == status["unknown"]
    assert digits(kpi["open-gaps"][0]) == stack.api("/gaps")["open"] == 1
    counts = stack.api("/quarantine")["counts"]
    assert digits(kpi["quarantine-held"][0]) == counts.get("held", 0) >= 1
    assert digits(kpi["quarantine-discarded"][0]) == counts.get("discarded", 0)
    revision = stack.api("/policy")["revision"]
    assert kpi["policy"][1] == revision and revision.removeprefix("sha256:").startswith(kpi["policy"][0])
    assert digits(kpi["received"][0]) == stack.replica.stats()["messages"]["received"]

    # Readings per second: one row per region; devices: one row per registry device, linking to its page.
    regions = [r["name"] for r in stack.api("/regions")]
    assert (
        browser.evaluate("[...document.querySelectorAll('#rates tr[data-region]')].map(r => r.dataset.region)")
        == regions
    )
    rows = browser.evaluate(
        "[...document.querySelectorAll('#devices tr[data-device]')].map(r => "
        "[r.dataset.device, r.dataset.status, r.querySelector('a').getAttribute('href')])"
    )
    assert sorted(r[0] for r in rows) == sorted(stack.registry.devices)
    assert {r[0]: r[1] for r in rows} == {d["device_id"]: d["status"] for d in devices}
    assert all(href == f"/dashboard/device?id={device}" for device, _, href in rows)
    assert browser.evaluate("[...document.querySelectorAll('nav a')].map(a => a.pathname)") == [
        "/dashboard",
        "/dashboard/device",
        "/dashboard/compliance",
        "/dashboard/audit",
    ]
    assert browser.evaluate("document.getElementById('health-chip').textContent") == "health: ok"

    browser.screenshot(screenshots / "live.png")
    assert console_errors(browser) == []


# --- Device ----------------------------------------------------------------------------------------

CHARTS = """[...document.querySelectorAll('#charts figure.chart')].map(f => {
    const canvas = f.querySelector('canvas');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked += 1;
    return {metric: f.dataset.metric, points: Number(f.dataset.points), start: f.dataset.start, end: f.dataset.end,
            bucket: f.dataset.bucket, region: f.dataset.region, error: f.dataset.error || null, inked,
            caption: f.querySelector('figcaption').textContent, width: canvas.width};
})"""


def _distinct_buckets(
    stack: LiveStack, region: str, device: str, name: str, start: str, end: str, bucket_s: int
) -> int:
    return int(
        stack.sql(
            stack.regions[region],
            "SELECT count(DISTINCT floor(extract(epoch FROM ts) / %s)) FROM readings"
            " WHERE device_id = %s AND name = %s AND num IS NOT NULL AND ts >= %s AND ts < %s",
            bucket_s,
            device,
            name,
            datetime.fromisoformat(start),
            datetime.fromisoformat(end),
        )[0][0]
    )


def _check_charts(browser: Browser, stack: LiveStack, window: str, bucket: str) -> list[dict[str, Any]]:
    rendered = js(f"{BACKFILL_DEVICE}|{window}|cn-north")
    browser.wait_for(f"document.getElementById('charts').dataset.rendered === {rendered}", what=f"charts of {window}")
    charts: list[dict[str, Any]] = browser.evaluate(CHARTS)
    latest = stack.api(f"/devices/{BACKFILL_DEVICE}/latest")
    numeric = sorted(f["name"] for f in latest["fields"] if isinstance(f["value"], int | float))
    assert len(numeric) == 6 and "operator_badge" not in numeric  # the badge is text: no chart
    assert [c["metric"] for c in charts] == numeric  # one chart per numeric metric
    for chart in charts:
        assert chart["error"] is None and chart["bucket"] == bucket and chart["region"] == "cn-north", chart
        series = stack.api(
            f"/devices/{BACKFILL_DEVICE}/series",
            name=chart["metric"],
            start=chart["start"],
            end=chart["end"],
            bucket=bucket,
            region="cn-north",
        )
        assert chart["points"] == len(series["points"]) > 0, chart
        assert chart["points"] == _distinct_buckets(
            stack, "cn-north", BACKFILL_DEVICE, chart["metric"], chart["start"], chart["end"], BUCKET_S[bucket]
        )
        assert f"{chart['points']} buckets of {bucket}" in chart["caption"]
        assert chart["inked"] > 2000, chart  # axes, labels, band and line were drawn
    return charts


def test_device_page_charts_latest_values_and_gaps(browser: Browser, stack: LiveStack, screenshots: Path) -> None:
    browser.navigate(stack.signed_in(f"{stack.base}/dashboard/device?id={BACKFILL_DEVICE}&window=6h"))
    charts = _check_charts(browser, stack, "6h", "5m")
    assert all(c["points"] > 50 for c in charts)  # 6 h of minute readings in 5 min buckets, less the gap

    # Latest values: one row per field, one column per region of the site, as the API answers per region.
    site = next(s for s in stack.api("/sites") if s["site_id"] == "cn-shenzhen")
    assert site["candidate_regions"] == ["cn-north", "us-east"]
    table = browser.evaluate("""({
        head: [...document.querySelectorAll('#latest thead th')].map(th => th.textContent),
        rows: Object.fromEntries([...document.querySelectorAll('#latest tr[data-field]')].map(tr => [tr.dataset.field,
            {category: tr.dataset.category, cells: Object.fromEntries([...tr.querySelectorAll('td[data-region]')]
                .map(td => [td.dataset.region, td.firstChild.textContent]))}]))})""")
    assert table["head"] == ["field", "category", "cn-north", "us-east"]
    expected: dict[str, dict[str, Any]] = {}
    for region in site["candidate_regions"]:
        for f in stack.api(f"/devices/{BACKFILL_DEVICE}/latest", region=region)["fields"]:
            expected.setdefault(f["name"], {"category": f["category"], "cells": {}})["cells"][region] = f["value"]
    assert set(table["rows"]) == set(expected)
    for name, row in expected.items():
        shown = table["rows"][name]
        assert shown["category"] == row["category"]
        assert set(shown["cells"]) == set(row["cells"]), name  # the badge is personal: it stays in cn-north
        for region, value in row["cells"].items():
            text = shown["cells"][region]
            if isinstance(value, str):
                assert text == value
            else:
                assert float(text.replace(",", "")) == pytest.approx(value, abs=0.01), (name, region, text)
    assert table["rows"]["operator_badge"]["category"] == "personal"
    assert set(table["rows"]["operator_badge"]["cells"]) == {"cn-north"}

    # Gaps of the device, and its cards.
    gaps = browser.evaluate(
        "[...document.querySelectorAll('#gaps tr[data-gap]')].map(tr => [tr.dataset.gap, tr.textContent])"
    )
    api_gaps = stack.api("/gaps", device_id=BACKFILL_DEVICE, state="all")["items"]
    assert [g[0] for g in gaps] == [f"{g['first_missing']}-{g['last_missing']}" for g in api_gaps] == ["19-20"]
    assert "open" in gaps[0][1]
    assert browser.evaluate("document.getElementById('status-chip').textContent") == f"{BACKFILL_DEVICE}: online"
    progress = stack.api(f"/devices/{BACKFILL_DEVICE}")["progress"]
    cards = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#device-info .card')].map(c => "
        "[c.querySelector('.label').textContent, c.querySelector('.value').textContent]))"
    )
    sent = (BACKFILL_BATCHES - len(MISSING_SEQS)) * BACKFILL_READINGS
    assert digits(cards["readings"]) == progress["readings"] == sent
    assert cards["open gaps"] == "1"

    # Hovering a chart reads the bucket under the pointer out as text.
    box = browser.evaluate(
        "(() => { const r = document.querySelector('#charts canvas').getBoundingClientRect();"
        " return [r.x + r.width * 0.6, r.y + r.height / 2]; })()"
    )
    browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
    readout = browser.wait_for(
        "(() => { const t = document.querySelector('#charts .readout').textContent;"
        " return t.includes('avg') && t; })()",
        what="hover readout",
    )
    assert "readings" in readout
    browser.screenshot(screenshots / "device.png")

    # Another window: a new bucket width, points again as the API and the store count them.
    browser.evaluate("document.querySelector('#window-buttons [data-window=\"1h\"]').click()")
    charts = _check_charts(browser, stack, "1h", "1m")
    assert all(55 <= c["points"] <= 61 for c in charts)
    assert browser.evaluate("document.querySelector('#window-buttons [aria-pressed=true]').dataset.window") == "1h"
    browser.screenshot(screenshots / "device-1h.png")
    assert console_errors(browser) == []


# --- Compliance ------------------------------------------------------------------------------------

DECISION_ROWS = """[...document.querySelectorAll('#decision-list tr[data-id]')].map(tr => ({id: tr.dataset.id,
    origin: tr.dataset.origin, region: tr.dataset.region, category: tr.dataset.category, outcome: tr.dataset.outcome,
    reasons: [...tr.querySelectorAll('.reasons li')].map(li => li.textContent)}))"""


def _set_filters(browser: Browser, **filters: str) -> None:
    for name, value in filters.items():
        browser.evaluate(
            f"(() => {{ const s = document.querySelector('#decision-filters [name={name}]');"
            f" s.value = {js(value)}; s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"
        )
    wanted = "&".join(f"{k}={v}" for k, v in filters.items())
    browser.wait_for(
        f"document.getElementById('decision-list').dataset.filters === {js(wanted)}"
        " && !document.getElementById('decision-list').hasAttribute('aria-busy')",
        what=f"decisions filtered by {wanted}",
    )


def test_compliance_page_decisions_quarantine_policy_and_whatif(
    browser: Browser, stack: LiveStack, screenshots: Path
) -> None:
    # Reached from the Live page's navigation.
    browser.navigate(stack.signed_in(stack.base + "/dashboard"))
    browser.wait_for("!!document.querySelector('nav a[href=\"dashboard/compliance\"]')")
    browser.evaluate("document.querySelector('nav a[href=\"dashboard/compliance\"]').click()")
    browser.wait_for(
        "location.pathname === '/dashboard/compliance' && document.body.dataset.loaded === '1'",
        what="compliance page loaded",
    )

    # Policy in force and its activation history.
    policy = stack.api("/policy")
    assert browser.evaluate("document.getElementById('policy-revision').textContent") == policy["revision"]
    activations = stack.api("/policy/activations")["items"]
    shown_activations = browser.evaluate("document.querySelectorAll('#activations tr[data-outcome]').length")
    assert shown_activations == len(activations) >= 1

    # Measured transfer volumes: one row per cross-border (site, region), the effective counts of the API.
    volumes = stack.api("/volumes")
    shown_volumes = browser.evaluate("""Object.fromEntries([...document.querySelectorAll('#volume-list tr[data-route]')]
        .map(tr => [tr.dataset.route, [...tr.querySelectorAll('td.num')].map(td => td.textContent)]))""")
    assert volumes["measuring"] and set(shown_volumes) == {f"{r['site_id']}/{r['region']}" for r in volumes["routes"]}
    hanoi = next(r for r in volumes["routes"] if (r["site_id"], r["region"]) == ("vn-hanoi", "ap-southeast"))
    assert hanoi["measured"]["individuals_ytd"] >= 1  # the badges of the Hanoi messages stored in Singapore
    assert digits(shown_volumes["vn-hanoi/ap-southeast"][0]) == hanoi["effective"]["individuals_ytd"]

    # Decisions: the newest page, then filtered by origin, destination region, category and outcome.
    rows = browser.evaluate(DECISION_ROWS)
    newest = stack.api("/decisions", limit=50)["items"]
    assert [r["id"] for r in rows] == [d["decision_id"] for d in newest]
    assert all(r["reasons"] for r in rows)
    assert rows[0]["reasons"] == newest[0]["reasons"]
    _set_filters(browser, origin="CN", region="cn-north")
    rows = browser.evaluate(DECISION_ROWS)
    api_rows = stack.api("/decisions", origin="CN", region="cn-north", limit=50)["items"]
    assert [r["id"] for r in rows] == [d["decision_id"] for d in api_rows] and len(rows) == 48
    assert {(r["origin"], r["region"]) for r in rows} == {("CN", "cn-north")}
    _set_filters(browser, origin="CN", region="us-east", category="personal", outcome="denied")
    rows = browser.evaluate(DECISION_ROWS)
    api_rows = stack.api("/decisions", origin="CN", region="us-east", category="personal", outcome="denied", limit=50)[
        "items"
    ]
    assert [r["id"] for r in rows] == [d["decision_id"] for d in api_rows] and len(rows) == 24
    assert all(r["outcome"] == "denied" and r["category"] == "personal" for r in rows)
    assert rows[0]["reasons"] == api_rows[0]["reasons"]
    query = browser.evaluate("new URL(location.href).search")
    assert "origin=CN" in query and "outcome=denied" in query  # a shareable link to this view

    # Quarantine review: the malformed payload is listed and inspected; it cannot be released (the page says
    # why and offers no release), and its direct release is refused (409).
    item = f"#quarantine-list tr[data-id={js(stack.malformed_id)}]"
    row = browser.wait_for(
        f"(() => {{ const tr = document.querySelector({js(item)}); return tr && tr.dataset.state; }})()",
        what="quarantined item listed",
    )
    assert row == "held"
    browser.evaluate(f"document.querySelector({js(item + ' button[data-action=inspect]')}).click()")
    payload = browser.wait_for(
        "(() => { const p = document.getElementById('quarantine-payload'); return p && p.textContent; })()",
        what="payload shown",
    )
    assert payload == MALFORMED.decode()
    note = browser.evaluate("document.getElementById('release-note').textContent")
    assert "malformed items cannot be released" in note
    assert browser.evaluate("!!document.getElementById('release-btn')") is False
    direct = httpx.post(
        stack.replica.url(f"/api/v1/quarantine/{stack.malformed_id}/release"), headers=stack.replica.headers, timeout=10
    )
    assert direct.status_code == 409 and "cannot be released" in direct.json()["detail"]
    assert stack.sql(
        stack.control, "SELECT state, released_by FROM rejections WHERE quarantine_id = %s", stack.malformed_id
    ) == [("held", None)]
    browser.screenshot(screenshots / "compliance-quarantine.png")

    # What-if of the uploaded draft over the last 24 h: the change table equals the API's answer.
    options = browser.evaluate("[...document.querySelectorAll('#draft-select option')].map(o => o.value)")
    assert stack.draft_revision in options
    browser.evaluate(
        f"document.getElementById('draft-select').value = {js(stack.draft_revision)};"
        "document.querySelector('#whatif-form [name=window_s]').value = '86400';"
        "document.getElementById('whatif-btn').click()"
    )
    browser.wait_for("!!document.getElementById('whatif-transitions')", timeout=60, what="what-if result")
    shown = browser.evaluate("""({
        changed: [...document.querySelectorAll('#whatif-transitions tr[data-changed=true]')].map(tr => [tr.dataset.key,
            [...tr.querySelectorAll('td.num')].map(td => td.textContent)]),
        rows: document.querySelectorAll('#whatif-transitions tbody tr').length,
        kpi: Object.fromEntries([...document.querySelectorAll('#whatif-result [data-kpi]')].map(c =>
            [c.dataset.kpi, c.querySelector('.value').textContent]))})""")
    report = httpx.post(
        stack.replica.url("/api/v1/policy/whatif"),
        timeout=60,
        headers=stack.replica.headers,
        json={"revision": stack.draft_revision, "window_s": 86400, "examples": 2},
    ).json()
    changed = {
        f"{t['origin']}|{t['region']}|{t['category']}": [t["decisions"], t["readings"]]
        for t in report["transitions"]
        if t["changed"]
    }
    assert {key: [digits(n) for n in nums] for key, nums in shown["changed"]} == changed
    assert "VN|ap-southeast|personal" in changed  # stricter Vietnamese rules: no more personal data to SG
    assert shown["rows"] == len(report["transitions"])
    assert digits(shown["kpi"]["changed"]) == report["changed_decisions"] > 0
    assert digits(shown["kpi"]["decisions"]) == report["decisions"]
    assert digits(shown["kpi"]["newly-quarantined"]) == report["newly_quarantined"]["messages"]
    browser.screenshot(screenshots / "compliance.png")
    assert console_errors(browser) == []


# --- sign-in ---------------------------------------------------------------------------------------


def test_sign_in_with_a_pasted_token_a_link_and_sign_out(browser: Browser, stack: LiveStack, screenshots: Path) -> None:
    user = stack.api("/me")["user"]
    signed_in = "(() => { const c = document.getElementById('user-chip'); return c && c.textContent; })()"
    browser.navigate(stack.base + "/dashboard/device")
    browser.evaluate("sessionStorage.clear()")
    browser.navigate(stack.base + "/dashboard")  # without a token: the sign-in form, no data
    browser.wait_for("!!document.getElementById('signin')", what="sign-in form")
    assert browser.evaluate("!!document.getElementById('user-chip')") is False
    browser.screenshot(screenshots / "sign-in.png")

    browser.evaluate(
        f"document.getElementById('signin-token').value = {js(stack.token)};"
        "document.getElementById('signin-btn').click()"
    )
    assert browser.wait_for(signed_in, what="signed in after pasting the token") == f"user: {user}"
    browser.wait_for("document.querySelectorAll('#devices tbody tr').length > 0", what="devices listed")
    assert browser.evaluate("!!document.getElementById('signin')") is False
    assert browser.evaluate("sessionStorage.getItem('dashboard.token')") == stack.token
    assert browser.evaluate("localStorage.getItem('dashboard.token')") is None  # this tab only

    browser.evaluate("document.getElementById('signout-btn').click()")
    browser.wait_for("!!document.getElementById('signin')", what="signed out")
    assert browser.evaluate("sessionStorage.getItem('dashboard.token')") is None

    # A link with #token=...: signed in, and the token leaves the address bar (and the history entry) at once.
    browser.navigate(stack.signed_in(stack.base + "/dashboard/compliance"))
    assert browser.wait_for(signed_in, what="signed in from the link") == f"user: {user}"
    assert browser.evaluate("location.hash") == ""
    assert stack.token not in browser.evaluate("location.href")

    # A revoked or mistyped token: the form again, with the API's reason.
    browser.evaluate("sessionStorage.setItem('dashboard.token', 'rtk_nosuchtoken_' + 'x'.repeat(43))")
    browser.navigate(stack.base + "/dashboard")
    reason = browser.wait_for(
        "(() => { const r = document.getElementById('signin-reason'); return r && r.textContent.trim(); })()",
        what="sign-in reason",
    )
    assert "invalid token" in reason
    browser.evaluate("sessionStorage.clear()")

"""The dashboard as each persona meets it, in headless Chromium against the real stack (tests/browser/stack.py):

- the API docs render their operations with nothing loaded from another host (plant networks are offline);
- without a token a page asks for one and asks the API for nothing;
- an operator sees the machine data of its region's sites, and panels its roles cannot read are hidden and
  named once, never polled; a refused request is not sent again;
- rates per region are time series; device charts have 5 and 15 minute windows, zoom (drag) and pan, an
  overlay of a second device and a CSV of what they show; tables do not overflow;
- compliance: decisions with a time filter, their total and exports; the quarantine lifecycle (a release
  refused, then made to succeed by a registry change; a dismissal with a reason); the audit page.

Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.browser.cdp import Browser
from tests.browser.stack import BACKFILL_DEVICE, PSEUDONYM, PSEUDONYM_DEVICE, REFLASHED_DEVICE, LiveStack

pytestmark = pytest.mark.integration

RESOURCES = "performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus || 0])"


def js(value: Any) -> str:
    return json.dumps(value)


def api_requests(browser: Browser) -> list[tuple[str, int]]:
    return [
        (urlparse(name).path + ("?" + urlparse(name).query if urlparse(name).query else ""), status)
        for name, status in browser.evaluate(RESOURCES)
        if "/api/v1/" in name
    ]


def user_token(stack: LiveStack, name: str, roles: list[str], regions: list[str] | str) -> str:
    created = httpx.post(
        stack.replica.url("/api/v1/users"),
        headers=stack.replica.headers,
        timeout=10,
        json={"name": name, "roles": roles, "regions": regions},
    )
    assert created.status_code in (201, 409), created.text
    token = httpx.post(
        stack.replica.url(f"/api/v1/users/{name}/tokens"),
        headers=stack.replica.headers,
        json={"label": "browser test"},
        timeout=10,
    )
    assert token.status_code == 201, token.text
    return str(token.json()["token"])


def sign_in(browser: Browser, url: str, token: str) -> None:
    browser.navigate("about:blank")
    browser.navigate(f"{url}#token={token}")


def no_overflow(browser: Browser) -> list[str]:
    """Scrolling containers and table cells whose content is wider than they are (at 1440 px)."""
    found: list[str] = browser.evaluate("""[...document.querySelectorAll('.scroll:not([hidden]), td')]
        .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1
                && !(e.classList.contains('scroll') && e.querySelector('table.matrix')))
        .map(e => (e.id || e.tagName) + ': ' + e.scrollWidth + ' > ' + e.clientWidth)""")
    return found


@pytest.fixture
def downloads(browser: Browser, tmp_path: Path) -> Iterator[Path]:
    browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(tmp_path))
    yield tmp_path
    browser.call("Browser.setDownloadBehavior", behavior="default")


def wait_file(folder: Path, pattern: str, timeout: float = 15) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} downloaded into {folder}: {list(folder.iterdir())}")


# --- offline API docs ------------------------------------------------------------------------------


def test_api_docs_render_operations_without_internet(browser: Browser, stack: LiveStack, screenshots: Path) -> None:
    spec = httpx.get(stack.replica.url("/api/v1/openapi.json"), timeout=10).json()
    operations = {f"{method.upper()} {path}" for path, methods in spec["paths"].items() for method in methods}
    browser.navigate(stack.base + "/api/v1/docs")
    browser.wait_for(
        f"document.querySelectorAll('.opblock').length >= {len(operations)}", timeout=30, what="Swagger UI operations"
    )
    shown = browser.evaluate(
        "[...document.querySelectorAll('.opblock')].map(o => "
        "o.querySelector('.opblock-summary-method').textContent + ' ' + "
        "(o.querySelector('.opblock-summary-path').dataset.path"
        " || o.querySelector('.opblock-summary-path').textContent))"
    )
    assert set(shown) == operations  # every operation (some under two tags)
    hosts = {urlparse(name).netloc for name, _ in browser.evaluate(RESOURCES)}
    assert hosts == {urlparse(stack.base).netloc}, hosts  # nothing from a CDN
    assert browser.console == []
    browser.screenshot(screenshots / "api-docs.png")
    assert httpx.get(stack.replica.url("/api/v1/redoc"), timeout=10).status_code == 404  # its bundle needs a CDN


# --- without a token -----------------------------------------------------------------------------------


def test_without_a_token_the_page_asks_for_one_and_polls_nothing(
    browser: Browser, stack: LiveStack, screenshots: Path
) -> None:
    browser.navigate(stack.base + "/dashboard/device")
    browser.evaluate("sessionStorage.clear()")
    for page in ("/dashboard", "/dashboard/device", "/dashboard/compliance", "/dashboard/audit"):
        browser.navigate(stack.base + page)
        browser.wait_for("!!document.getElementById('signin')", what=f"sign-in form on {page}")
        browser.evaluate("new Promise(r => setTimeout(r, 4500))")  # two poll periods of the Live page
        assert api_requests(browser) == [], page
    browser.screenshot(screenshots / "no-token.png")


# --- operator ----------------------------------------------------------------------------------------


def test_operator_sees_machine_data_of_its_sites_and_nothing_it_may_not_read(
    browser: Browser, stack: LiveStack, screenshots: Path
) -> None:
    token = user_token(stack, "op-eu", ["operator"], ["eu-central"])
    sign_in(browser, stack.base + "/dashboard", token)
    browser.wait_for(
        "document.querySelectorAll('#devices tr[data-device]').length > 0"
        " && document.querySelectorAll('#rates tr[data-region]').length > 0",
        what="operator's Live page",
    )
    browser.evaluate("new Promise(r => setTimeout(r, 4500))")  # a few polls
    hidden = browser.evaluate("['flows-panel', 'decisions-panel'].map(id => document.getElementById(id).hidden)")
    assert hidden == [True, True]
    note = browser.evaluate("document.getElementById('access-note').textContent")
    assert "op-eu" in note and "the flow matrix" in note and "recent decisions" in note
    assert browser.evaluate("document.querySelectorAll('main .error').length") == 0  # no red panels
    requests = api_requests(browser)
    assert not any(
        path.startswith(("/api/v1/flows", "/api/v1/decisions", "/api/v1/quarantine")) for path, _ in requests
    )
    assert all(status in (200, 503) for _, status in requests), requests
    assert browser.console == []
    browser.screenshot(screenshots / "operator-live.png")

    # Its own plant: machine metrics charted, the personal field withheld.
    sign_in(browser, f"{stack.base}/dashboard/device?id=de-munich-cnc-01&window=24h", token)
    browser.wait_for("document.querySelectorAll('#charts figure.chart[data-points]').length > 0", what="charts")
    assert browser.evaluate("document.querySelectorAll('#charts figure.chart[data-error]').length") == 0
    badge = browser.evaluate(
        "document.querySelector('#latest tr[data-field=operator_badge] td[data-region]').textContent"
    )
    assert badge.startswith("withheld")
    browser.screenshot(screenshots / "operator-device.png")

    # Another region's plant: explained once; a refresh does not ask again (the 403 is remembered).
    sign_in(browser, f"{stack.base}/dashboard/device?id={BACKFILL_DEVICE}", token)
    text = browser.wait_for(
        "(() => { const d = document.querySelector('#latest .denied'); return d && d.textContent; })()",
        what="explanation",
    )
    assert "outside the region scope" in text and "operators read the machine data" in text
    asked = [p for p, _ in api_requests(browser) if p.startswith(f"/api/v1/devices/{BACKFILL_DEVICE}/latest")]
    browser.evaluate("document.getElementById('refresh-btn').click()")
    browser.evaluate("new Promise(r => setTimeout(r, 1500))")
    again = [p for p, _ in api_requests(browser) if p.startswith(f"/api/v1/devices/{BACKFILL_DEVICE}/latest")]
    assert again == asked and 0 < len(asked) <= 2
    assert browser.evaluate("document.querySelectorAll('#charts .error, #latest .error').length") == 0

    # The compliance page: nothing of it is theirs except the policy in force, and it says so.
    sign_in(browser, stack.base + "/dashboard/compliance", token)
    browser.wait_for("document.body.dataset.loaded === '1'", what="compliance page")
    assert browser.evaluate("['quarantine', 'decisions', 'whatif'].map(id => document.getElementById(id).hidden)") == [
        True,
        True,
        True,
    ]
    assert not any(
        p.startswith(("/api/v1/quarantine", "/api/v1/decisions", "/api/v1/policy/")) for p, _ in api_requests(browser)
    )
    assert browser.console == []


# --- engineer: rates, charts, overlay, CSV, tables ----------------------------------------------------


def test_live_rates_are_time_series_per_region(browser: Browser, stack: LiveStack, screenshots: Path) -> None:
    sign_in(browser, stack.base + "/dashboard", stack.token)
    browser.wait_for("document.querySelectorAll('#rates tr[data-region] [data-series]').length === 4", what="rates")
    rows = browser.evaluate("""[...document.querySelectorAll('#rates tr[data-region]')].map(tr => ({
        region: tr.dataset.region, points: Number(tr.dataset.points),
        readings: tr.querySelector('[data-rate=readings]').textContent,
        canvas: !!tr.querySelector('canvas.spark')}))""")
    rates = stack.api("/rates", window_s=900, step_s=30)
    by_region = {r["region"]: r for r in rates["regions"]}
    for row in rows:
        api_points = len(by_region[row["region"]]["points"])
        assert abs(row["points"] - api_points) <= 1, (row, api_points)  # a step may close between the two
        assert row["canvas"] == (row["points"] > 0)
    legend = browser.evaluate("document.querySelector('#rates-panel .legend').textContent")
    assert "reading" in legend and "stored value" in legend
    headers = browser.evaluate("[...document.querySelectorAll('#rates th')].map(th => th.textContent)")
    assert headers[1:4] == ["readings/s", "values/s", "live values/s"]
    assert no_overflow(browser) == []
    browser.screenshot(screenshots / "live-rates.png")


CHART = """(() => { const f = document.querySelector('#charts figure.chart[data-metric=spindle_temp_c]');
    return f && {points: Number(f.dataset.points), start: f.dataset.start, end: f.dataset.end, bucket: f.dataset.bucket,
                 region: f.dataset.region, compare: f.dataset.compare || null,
                 comparePoints: Number(f.dataset.comparePoints || 0)}; })()"""


def _series_points(stack: LiveStack, device: str, chart: dict[str, Any], region: str) -> int:
    return len(
        stack.api(
            f"/devices/{device}/series",
            name="spindle_temp_c",
            start=chart["start"],
            end=chart["end"],
            bucket=chart["bucket"],
            region=region,
        )["points"]
    )


def test_device_windows_zoom_pan_overlay_and_csv(
    browser: Browser, stack: LiveStack, screenshots: Path, downloads: Path
) -> None:
    sign_in(browser, f"{stack.base}/dashboard/device?id={BACKFILL_DEVICE}&window=6h", stack.token)
    browser.wait_for(
        f"document.getElementById('charts').dataset.rendered === {js(BACKFILL_DEVICE + '|6h|cn-north')}",
        what="6 h charts",
    )
    windows = browser.evaluate("[...document.querySelectorAll('#window-buttons button')].map(b => b.dataset.window)")
    assert windows == ["5m", "15m", "1h", "6h", "24h", "7d"]
    before = browser.evaluate(CHART)

    # Zoom: drag across the middle third of a chart; every chart shows that span, in finer buckets.
    box = browser.evaluate(
        "(() => { const r = document.querySelector('#charts figure[data-metric=spindle_temp_c] "
        "canvas').getBoundingClientRect(); return [r.x, r.y + r.height / 2, r.width]; })()"
    )
    x0, y, width = box[0] + 56 + (box[2] - 68) / 3, box[1], (box[2] - 68) / 3
    browser.send("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y, button="left", clickCount=1)
    for step in range(1, 6):
        browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0 + width * step / 5, y=y, button="left")
    browser.send("Input.dispatchMouseEvent", type="mouseReleased", x=x0 + width, y=y, button="left", clickCount=1)
    browser.wait_for(
        f"document.getElementById('charts').dataset.rendered === {js(BACKFILL_DEVICE + '|zoom|cn-north')}",
        what="zoomed charts",
    )
    zoomed = browser.evaluate(CHART)
    span = datetime.fromisoformat(zoomed["end"]) - datetime.fromisoformat(zoomed["start"])
    assert timedelta(minutes=90) < span < timedelta(minutes=150), span  # a third of 6 h
    assert zoomed["bucket"] == "1m" and before["bucket"] == "5m"
    assert zoomed["points"] == _series_points(stack, BACKFILL_DEVICE, zoomed, "cn-north") > 60
    assert "view=" in browser.evaluate("location.search")  # a shareable link to this span
    captions = browser.evaluate("[...document.querySelectorAll('#charts figcaption')].map(c => c.textContent)")
    assert captions and not any("null" in c or "undefined" in c for c in captions), captions
    browser.screenshot(screenshots / "device-zoomed.png")

    # Pan: half a span earlier.
    browser.evaluate("document.getElementById('zoom-earlier').click()")
    browser.wait_for(f"(() => {{ const c = {CHART}; return c && c.start !== {js(zoomed['start'])}; }})()", what="pan")
    panned = browser.evaluate(CHART)
    shift = datetime.fromisoformat(zoomed["start"]) - datetime.fromisoformat(panned["start"])
    assert abs(shift - span / 2) < timedelta(seconds=2)
    assert panned["points"] == _series_points(stack, BACKFILL_DEVICE, panned, "cn-north")

    # Overlay: the same metric of another device, over 24 h.
    browser.evaluate(
        "document.getElementById('zoom-reset').click();"
        "document.querySelector('#window-buttons [data-window=\"24h\"]').click()"
    )
    browser.evaluate(
        "(() => { const s = document.getElementById('compare-select'); s.value = 'de-munich-cnc-01';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    rendered = js(f"{BACKFILL_DEVICE}|24h|cn-north|de-munich-cnc-01")
    browser.wait_for(f"document.getElementById('charts').dataset.rendered === {rendered}", what="overlay")
    overlaid = browser.evaluate(CHART)
    assert overlaid["compare"] == "de-munich-cnc-01"
    assert overlaid["comparePoints"] == _series_points(stack, "de-munich-cnc-01", overlaid, "eu-central") > 0
    assert "de-munich-cnc-01" in browser.evaluate(
        "document.querySelector('#charts figure[data-metric=spindle_temp_c] figcaption').textContent"
    )
    browser.screenshot(screenshots / "device-compare.png")

    # CSV of what the chart shows: both devices' buckets.
    browser.evaluate("document.querySelector('#charts figure[data-metric=spindle_temp_c] [data-action=csv]').click()")
    rows = list(csv.DictReader(io.StringIO(wait_file(downloads, "*.csv").read_text())))
    assert len(rows) == overlaid["points"] + overlaid["comparePoints"]
    assert {r["device_id"] for r in rows} == {BACKFILL_DEVICE, "de-munich-cnc-01"}
    assert {r["metric"] for r in rows} == {"spindle_temp_c"} and {r["bucket"] for r in rows} == {overlaid["bucket"]}
    series = stack.api(
        f"/devices/{BACKFILL_DEVICE}/series",
        name="spindle_temp_c",
        start=overlaid["start"],
        end=overlaid["end"],
        bucket=overlaid["bucket"],
        region="cn-north",
    )["points"]
    mine = [r for r in rows if r["device_id"] == BACKFILL_DEVICE]
    shown: list[tuple[object, ...]] = [(r["bucket_start"], float(r["avg"]), int(r["count"])) for r in mine]
    assert shown == [(p["ts"], pytest.approx(p["avg"]), p["count"]) for p in series]

    # The short windows: 10 s buckets, as the API answers them.
    browser.evaluate(
        "(() => { const s = document.getElementById('compare-select'); s.value = '';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    for window in ("5m", "15m"):
        browser.evaluate(f"document.querySelector('#window-buttons [data-window=\"{window}\"]').click()")
        browser.wait_for(
            f"document.getElementById('charts').dataset.rendered === "
            f"{js(BACKFILL_DEVICE + '|' + window + '|cn-north')}",
            what=f"{window} charts",
        )
        chart = browser.evaluate(CHART)
        assert chart["bucket"] == "10s"
        assert datetime.fromisoformat(chart["end"]) - datetime.fromisoformat(chart["start"]) == timedelta(
            minutes=int(window[:-1])
        )
        assert chart["points"] == _series_points(stack, BACKFILL_DEVICE, chart, "cn-north")
    assert no_overflow(browser) == []
    assert browser.console == []


def test_long_values_are_clipped_with_the_whole_value_in_a_tooltip(browser: Browser, stack: LiveStack) -> None:
    """A pseudonym (HMAC hex) in the latest values, long decision transforms: no table overflows its panel."""
    assert stack.sql(
        stack.regions["eu-central"],
        "SELECT txt, transform FROM readings WHERE device_id = %s AND name = 'operator_badge'",
        PSEUDONYM_DEVICE,
    ) == [(PSEUDONYM, "pseudonymized")]
    sign_in(browser, f"{stack.base}/dashboard/device?id={PSEUDONYM_DEVICE}", stack.token)
    cell = browser.wait_for(
        "(() => { const c = document.querySelector("
        "'#latest tr[data-field=operator_badge] td[data-region=eu-central] .clip');"
        " return c && [c.textContent, c.title, c.scrollWidth > c.clientWidth]; })()",
        what="pseudonym cell",
    )
    assert cell == [PSEUDONYM, PSEUDONYM, True]  # cut to the cell, the whole value in the tooltip
    assert no_overflow(browser) == []
    for page in ("/dashboard", "/dashboard/compliance"):
        sign_in(browser, stack.base + page, stack.token)
        browser.wait_for("document.body.dataset.updated || document.body.dataset.loaded === '1'", what=page)
        assert no_overflow(browser) == [], page


# --- compliance ---------------------------------------------------------------------------------------


def test_decisions_time_filter_total_and_exports(
    browser: Browser, stack: LiveStack, screenshots: Path, downloads: Path
) -> None:
    sign_in(browser, stack.base + "/dashboard/compliance?origin=CN", stack.token)
    browser.wait_for(
        "document.body.dataset.loaded === '1' && !!document.getElementById('decisions-count').dataset.total",
        what="decisions",
    )
    total = stack.api("/decisions", origin="CN", limit=1)["total"]
    assert int(browser.evaluate("document.getElementById('decisions-count').dataset.total")) == total > 50
    assert f"of {total:,}" in browser.evaluate("document.getElementById('decisions-count').textContent")

    # The last hour only: the backfill's decisions were made at receipt (within the hour), so set a custom span
    # that excludes everything and one that includes everything.
    browser.evaluate("""(() => { const f = document.getElementById('decision-filters');
        f.elements.period.value = 'custom'; f.elements.since.value = '2001-01-01T00:00:00';
        f.elements.until.value = '2001-01-02T00:00:00';
        f.elements.until.dispatchEvent(new Event('change', {bubbles: true})); })()""")
    browser.wait_for("document.getElementById('decisions-count').dataset.total === '0'", what="empty span")
    browser.evaluate("""(() => { const f = document.getElementById('decision-filters');
        f.elements.period.value = '86400';
        f.elements.period.dispatchEvent(new Event('change', {bubbles: true})); })()""")
    browser.wait_for(f"document.getElementById('decisions-count').dataset.total === '{total}'", what="last 24 h")
    assert "period=86400" in browser.evaluate("location.search")

    browser.evaluate("document.getElementById('export-csv').click()")
    exported = list(csv.DictReader(io.StringIO(wait_file(downloads, "decisions-*.csv").read_text())))
    assert len(exported) == total and {r["origin_country"] for r in exported} == {"CN"}
    browser.evaluate("document.getElementById('export-jsonl').click()")
    lines = wait_file(downloads, "decisions-*.jsonl").read_text().splitlines()
    assert len(lines) == total and json.loads(lines[0])["origin_country"] == "CN"
    browser.screenshot(screenshots / "compliance-decisions.png")
    assert browser.console == []


def test_quarantine_release_after_a_registry_change_and_dismissal(
    browser: Browser, stack: LiveStack, screenshots: Path
) -> None:
    officer = user_token(stack, "officer-eu", ["compliance"], ["eu-central"])
    sign_in(browser, stack.base + "/dashboard/compliance", officer)
    item = f"#quarantine-list tr[data-id={js(stack.undeclared_id)}]"
    browser.wait_for(f"!!document.querySelector({js(item)})", what="the undeclared item listed")
    browser.evaluate(f"document.querySelector({js(item + ' button[data-action=inspect]')}).click()")
    browser.wait_for("!!document.getElementById('release-btn')", what="release button")
    assert "profile" in browser.evaluate("document.getElementById('release-note').textContent")

    # Refused while the registry still says cnc_mill: the page shows why and what would help; audited.
    browser.evaluate("document.getElementById('release-btn').click()")
    result = browser.wait_for(
        "(() => { const r = document.getElementById('release-result');"
        " return r.dataset.status && [r.dataset.status, r.textContent]; })()",
        what="refusal",
    )
    assert result[0] == "409" and "still rejected" in result[1] and "profile" in result[1]
    assert stack.sql(
        stack.control,
        "SELECT actor FROM audit_log WHERE action = 'quarantine.release_refused' AND target = %s",
        f"quarantine:{stack.undeclared_id}",
    ) == [("officer-eu",)]

    # The operator registers the device as the press it now is; the release succeeds.
    moved = httpx.put(
        stack.replica.url(f"/api/v1/devices/{REFLASHED_DEVICE}"),
        headers=stack.replica.headers,
        json={"site": "fr-lyon", "profile": "injection_press"},
        timeout=10,
    )
    assert moved.status_code == 200, moved.text

    def released() -> Any:
        browser.evaluate("document.getElementById('release-btn') && document.getElementById('release-btn').click()")
        return (
            browser.wait_for(
                "(() => { const r = document.getElementById('release-result');"
                " return r.dataset.status && r.textContent !== 'releasing…' && r.dataset.status; })()",
                what="release answer",
            )
            == "200"
        )

    browser.wait_until(released, timeout=30, what="release after the registry change (refresh every 2 s)")
    assert "Released by officer-eu" in browser.evaluate("document.getElementById('release-result').textContent")
    assert stack.sql(
        stack.regions["eu-central"],
        "SELECT num FROM readings WHERE device_id = %s AND name = 'barrel_temp_c'",
        REFLASHED_DEVICE,
    ) == [(221.5,)]

    # Dismiss the malformed item (it can never be released) with a reason; the open count goes down.
    open_before = stack.api("/quarantine")["counts"]["open"]
    item = f"#quarantine-list tr[data-id={js(stack.malformed_id)}]"
    browser.wait_for(f"!!document.querySelector({js(item)})", what="the malformed item listed")
    browser.evaluate(f"document.querySelector({js(item + ' button[data-action=inspect]')}).click()")
    browser.wait_for(
        "!!document.getElementById('dismiss-btn') && !document.getElementById('release-btn')", what="dismiss form"
    )
    browser.evaluate(
        "document.getElementById('dismiss-reason').value = 'truncated by a gateway bug';"
        "document.getElementById('dismiss-btn').click()"
    )
    text = browser.wait_for(
        "(() => { const r = document.getElementById('release-result');"
        " return r.dataset.status === '200' && r.textContent; })()",
        what="dismissed",
    )
    assert "Dismissed by officer-eu: truncated by a gateway bug" in text
    assert stack.sql(
        stack.control,
        "SELECT state, closed_by, close_reason FROM rejections WHERE quarantine_id = %s",
        stack.malformed_id,
    ) == [("dismissed", "officer-eu", "truncated by a gateway bug")]
    assert stack.api("/quarantine")["counts"]["open"] == open_before - 1
    assert stack.sql(
        stack.regions["eu-central"],
        "SELECT count(*) FROM quarantine_payloads WHERE quarantine_id = %s",
        stack.malformed_id,
    ) == [(0,)]
    browser.screenshot(screenshots / "compliance-quarantine-lifecycle.png")
    assert [line for line in browser.console if "/release" not in line] == []  # the 409 is logged by Chromium


def test_audit_page_lists_filters_and_exports(
    browser: Browser, stack: LiveStack, screenshots: Path, downloads: Path
) -> None:
    sign_in(browser, stack.base + "/dashboard/audit", stack.token)
    browser.wait_for("document.body.dataset.loaded === '1'", what="audit page")
    shown = browser.evaluate(
        "[...document.querySelectorAll('#audit-list tr[data-id]')].map(tr => Number(tr.dataset.id))"
    )
    assert shown == [r["id"] for r in stack.api("/audit", limit=100)["items"]] and shown
    browser.evaluate("""(() => { const f = document.getElementById('audit-filters');
        f.elements.action.value = 'user.create'; f.requestSubmit(); })()""")
    browser.wait_for("document.getElementById('audit-list').dataset.filters === 'action=user.create'", what="filtered")
    actions = browser.evaluate("[...document.querySelectorAll('#audit-list tr[data-id]')].map(tr => tr.dataset.action)")
    assert actions and set(actions) == {"user.create"}
    browser.evaluate("document.getElementById('audit-export-csv').click()")
    rows = list(csv.DictReader(io.StringIO(wait_file(downloads, "audit-*.csv").read_text())))
    assert len(rows) == len(actions) and {r["action"] for r in rows} == {"user.create"}
    assert no_overflow(browser) == []
    browser.screenshot(screenshots / "audit.png")
    assert browser.console == []

    engineer = user_token(stack, "eng-all", ["engineer"], "*")
    sign_in(browser, stack.base + "/dashboard/audit", engineer)
    browser.wait_for("document.getElementById('audit').hidden === true", what="audit hidden for an engineer")
    assert "the audit trail" in browser.evaluate("document.getElementById('access-note').textContent")
    assert not any(p.startswith("/api/v1/audit") for p, _ in api_requests(browser))
    _ = datetime.now(UTC)

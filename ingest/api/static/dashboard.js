// Live page of the dashboard: pipeline counters, fleet status, review backlog, the origin -> region flow
// matrix, rates per region (time series), recent decisions, rejections and devices. Polls the API every 2 s,
// only what the signed-in user's roles may read (panels the roles cannot read are hidden and named once).
// Every value from the API reaches the page as text (textContent / text nodes), never as HTML.
import {
  OUTCOMES, ago, backlog, byId, clip, clock, el, getJSON, guard, hasRole, note, num, pageUrl, perSecond, pill, query,
  ready, restrict, safeClass, session, setQuery, shortRev, show, table,
} from "./common.js";

const POLL_MS = 2000;
const RATES_EVERY = 5; // polls between two /rates requests (10 s)
const WINDOWS = [60, 300, 900, 3600, 86400];
const state = {
  paused: false, timer: null, prevRows: null, prevAt: 0, rates: {}, windowS: 300, ticks: 0, series: null,
};
const TELEMETRY = ["operator", "engineer", "compliance"]; // roles that read counters, devices, rejections, rates
const DECISIONS = ["engineer", "compliance"];
const STORE_JOBS = ["operator", "engineer"]; // roles that read the region stores' background jobs

// --- header --------------------------------------------------------------------------------------
function renderHealth(health) {
  const chip = byId("health-chip");
  const detail = byId("health-detail");
  const ok = health.status === "ok";
  chip.className = `chip ${ok ? "ok" : "bad"}`;
  chip.textContent = `health: ${ok ? "ok" : "degraded"}`;
  const checks = Object.entries(health.checks || {});
  const failing = checks.filter(([, c]) => !c.ok);
  chip.title = checks.map(([name, c]) => `${name}: ${c.detail}`).join("\n");
  detail.hidden = failing.length === 0;
  detail.textContent = failing.map(([name, c]) => `${name}: ${c.detail}`).join(" · ");
  const policy = byId("policy-chip");
  policy.textContent = `policy: ${health.policy_revision ? shortRev(health.policy_revision) : "none"}`;
  policy.title = health.policy_revision ? `revision in force: ${health.policy_revision}` : "no policy loaded";
  policy.dataset.revision = health.policy_revision || "";
}

function renderBroker(stats) {
  const chip = byId("broker-chip");
  if (!stats || stats.pipeline === null || stats.broker_connected === undefined) {
    chip.className = "chip";
    chip.textContent = "broker: no pipeline here";
    return;
  }
  chip.className = `chip ${stats.broker_connected ? "ok" : "bad"}`;
  chip.textContent = `broker: ${stats.broker_connected ? "connected" : "disconnected"}`;
  chip.title = stats.last_error ? `last error: ${stats.last_error}` : "";
}

// --- cards ---------------------------------------------------------------------------------------
function card(key, label, value, { title, tone, href } = {}) {
  const body = [el("div", { class: "label" }, label), el("div", { class: "value" }, value)];
  const cls = `card${tone ? ` ${tone}` : ""}`;
  if (href) return el("a", { class: `${cls} link`, href, title, "data-kpi": key }, body);
  return el("div", { class: cls, title, "data-kpi": key }, body);
}

function renderOverview(devices, queues, health) {
  if (!hasRole(...TELEMETRY)) {
    show("overview", card("policy", "policy in force", health && health.policy_revision ? shortRev(health.policy_revision) : "–",
      { title: health ? health.policy_revision : "" }));
    return;
  }
  const status = { online: 0, offline: 0, unknown: 0 };
  for (const d of devices ? devices.items : []) status[safeClass(d.status, ["online", "offline"], "unknown")] += 1;
  const compliance = pageUrl("compliance");
  const q = queues ? queues.quarantine : null;
  const held = q ? q.held || 0 : undefined;
  const gaps = queues ? queues.openGaps : undefined;
  const quarantineCards = q ? [
    card("quarantine-held", "quarantine: held", num(held),
      { tone: held ? "warn" : null, href: `${compliance}#quarantine`, title: "Payload kept in a lawful region, awaiting review" }),
    card("quarantine-discarded", "quarantine: discarded", num(q.discarded || 0),
      { href: `${compliance}#quarantine`, title: "No lawful region: metadata only, payload discarded (dismiss once reviewed)" }),
  ] : [];
  show(
    "overview",
    card("devices-online", "devices online", devices ? num(status.online) : "–", { tone: status.online ? "good" : null }),
    card("devices-offline", "devices offline", devices ? num(status.offline) : "–", { tone: status.offline ? "bad" : null }),
    card("devices-unknown", "devices never reported", devices ? num(status.unknown) : "–",
      { title: "No gateway has listed these devices in a birth or death message" }),
    card("open-gaps", "open sequence gaps", num(gaps),
      { tone: gaps ? "warn" : null, title: "Batch numbers a device assigned but the ingest never received (see each device's page)" }),
    quarantineCards,
    card("policy", "policy in force", health && health.policy_revision ? shortRev(health.policy_revision) : "–",
      { href: `${compliance}#policy`, title: health ? health.policy_revision : "" }),
  );
}

function renderKpis(stats) {
  if (!stats || stats.pipeline === null) {
    show("kpis", card("pipeline", "pipeline", "not in this process", { title: "GET /api/v1/stats returned pipeline: null" }));
    return;
  }
  const m = stats.messages || {};
  const d = stats.decisions || {};
  show(
    "kpis",
    card("received", "messages received", num(m.received)),
    card("stored", "messages stored", num(m.stored)),
    card("rejected", "messages rejected", num(m.rejected)),
    card("inflight", "in flight (unacked)", num(stats.inflight)),
    card("decisions-stored", "decisions stored", num(d.stored || 0)),
    card("decisions-transformed", "decisions transformed", num(d.transformed || 0)),
    card("decisions-denied", "decisions denied", num(d.denied || 0)),
    card("store-errors", "store errors", num(stats.store_errors),
      { title: stats.last_error || "", tone: stats.store_errors ? "bad" : null }),
    card("last-commit", "last commit", ago(stats.last_commit_at), { title: stats.last_commit_at || "" }),
  );
}

// --- rates ---------------------------------------------------------------------------------------
function updateRates(stats) {
  const rows = stats && stats.rows_by_region;
  const now = performance.now();
  if (!rows) return;
  if (state.prevRows) {
    const dt = (now - state.prevAt) / 1000;
    for (const [region, count] of Object.entries(rows)) {
      const before = state.prevRows[region] ?? 0;
      // A counter that went down means the process restarted: restart the rate too.
      state.rates[region] = dt > 0 && count >= before ? (count - before) / dt : 0;
    }
  }
  state.prevRows = { ...rows };
  state.prevAt = now;
}

/** One small time series over the rates window: stored values/s as a bar per step, readings/s as a line. */
function sparkline(points, series) {
  const canvas = el("canvas", { class: "spark", width: 240, height: 36, role: "img" });
  const t0 = Date.parse(series.start);
  const t1 = Date.parse(series.end);
  const step = series.step_s;
  const max = Math.max(1e-9, ...points.map((p) => p.values / step));
  requestAnimationFrame(() => {
    const ctx = canvas.getContext("2d");
    const x = (t) => ((t + (step * 1000) / 2 - t0) / (t1 - t0)) * canvas.width;
    const y = (v) => canvas.height - 2 - (v / max) * (canvas.height - 4);
    const pts = points.map((p) => ({ t: Date.parse(p.ts), v: p.values / step, r: p.readings / step }));
    const bar = Math.max(2, ((step * 1000) / (t1 - t0)) * canvas.width - 1);
    ctx.fillStyle = "rgba(36, 87, 197, 0.25)";
    for (const p of pts) ctx.fillRect(x(p.t) - bar / 2, y(p.v), bar, canvas.height - y(p.v));
    ctx.strokeStyle = "#2457c5";
    ctx.fillStyle = "#2457c5";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.r)) : ctx.moveTo(x(p.t), y(p.r))));
    ctx.stroke();
    for (const p of pts) ctx.fillRect(x(p.t) - 1.5, y(p.r) - 1.5, 3, 3);
  });
  return canvas;
}

function renderRates(regions) {
  const series = state.series;
  const byRegion = Object.fromEntries(((series && series.regions) || []).map((r) => [r.region, r]));
  const rows = regions.map((region) => {
    const live = state.rates[region.name];
    const s = byRegion[region.name];
    const points = s ? s.points : [];
    // the last complete step: the newest one may still be filling
    const last = points.length > 1 ? points[points.length - 2] : points[0];
    const step = series ? series.step_s : 1;
    const title = s && s.error ? `store unavailable: ${s.error}`
      : points.map((p) => `${clock(p.ts)}: ${perSecond(p.readings / step)} readings/s, ${perSecond(p.values / step)} values/s`).join("\n");
    return el(
      "tr",
      { "data-region": region.name, "data-points": points.length },
      el("td", {}, region.name, " ", el("span", { class: "muted" }, region.country)),
      el("td", { class: "num", "data-rate": "readings" }, last ? perSecond(last.readings / step) : "–"),
      el("td", { class: "num", "data-rate": "values" }, last ? perSecond(last.values / step) : "–"),
      el("td", { class: "num", "data-rate": "live" }, perSecond(live)),
      el("td", { title, "data-series": "1" }, s && s.error ? el("span", { class: "error" }, "store unavailable")
        : points.length ? sparkline(points, series) : el("span", { class: "muted" }, "no data in 15 min")),
    );
  });
  const headers = ["region", { label: "readings/s", num: true }, { label: "values/s", num: true },
    { label: "live values/s", num: true }, "last 15 min"];
  show("rates", table(headers, rows, { class: "rates" }));
}

// --- flow matrix ---------------------------------------------------------------------------------
function counts(outcomes) {
  const pills = OUTCOMES.filter((o) => outcomes[o] > 0)
    .map((o) => el("span", { class: `pill ${o}`, title: o, "data-outcome": o }, num(outcomes[o])));
  return el("div", { class: "counts" }, pills);
}

function renderFlows(flows, regions) {
  const regionNames = regions.map((r) => r.name);
  for (const f of flows.flows) if (!regionNames.includes(f.region)) regionNames.push(f.region);
  const origins = [...new Set(flows.flows.map((f) => f.origin_country))].sort();
  if (origins.length === 0) {
    show("flows", note(`No decisions in the last ${num(flows.window_s)} s.`));
    return;
  }
  const cells = {};
  for (const f of flows.flows) {
    const key = `${f.origin_country}\u0000${f.region}`;
    const cell = (cells[key] ||= { stored: 0, transformed: 0, denied: 0, readings: 0, categories: {} });
    cell[f.outcome] += f.decisions;
    cell.readings += f.readings;
    const cat = (cell.categories[f.category] ||= { stored: 0, transformed: 0, denied: 0 });
    cat[f.outcome] += f.decisions;
  }
  const countryOf = Object.fromEntries(regions.map((r) => [r.name, r.country]));
  const header = el(
    "tr",
    {},
    el("th", {}, "origin ↓ / region →"),
    regionNames.map((name) => el("th", {}, name, " ", el("span", { class: "muted" }, countryOf[name] || ""))),
  );
  const body = origins.map((origin) =>
    el(
      "tr",
      { "data-origin": origin },
      el("th", { class: "origin" }, origin),
      regionNames.map((region) => {
        const cell = cells[`${origin}\u0000${region}`];
        if (!cell) return el("td", { class: "cell empty", "data-region": region }, "·");
        const title = Object.entries(cell.categories)
          .map(([category, c]) => `${category}: ${OUTCOMES.map((o) => `${o} ${c[o]}`).join(", ")}`)
          .join("\n");
        return el(
          "td",
          { class: "cell", title, "data-region": region },
          counts(cell),
          el("div", { class: "readings", "data-readings": cell.readings }, `${num(cell.readings)} readings`),
        );
      }),
    ),
  );
  const totals = el(
    "tr",
    { class: "totals" },
    el("th", {}, "total"),
    regionNames.map((region) => {
      const t = flows.totals.find((x) => x.region === region);
      if (!t || t.decisions === 0) return el("td", { class: "cell empty" }, "·");
      const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, t.outcomes[o]?.decisions || 0]));
      return el("td", { class: "cell" }, counts(outcomes), el("div", { class: "readings" }, `${num(t.readings)} readings`));
    }),
  );
  show("flows", el("table", { class: "matrix", "data-window": flows.window_s }, el("thead", {}, header), el("tbody", {}, body, totals)));
}

// --- decisions, rejections, devices --------------------------------------------------------------
function renderDecisions(page) {
  if (page.items.length === 0) {
    show("decisions", note("No decisions yet."));
    return;
  }
  const rows = page.items.map((d) =>
    el(
      "tr",
      {},
      el("td", { title: d.decided_at }, clock(d.decided_at)),
      el("td", {}, el("a", { href: pageUrl("device", { id: d.device_id }) }, d.device_id), el("span", { class: "muted" }, ` #${d.seq}`)),
      el("td", {}, d.category),
      el("td", {}, `${d.origin_country} → ${d.region} (${d.destination_country})`),
      el("td", {}, pill(d.outcome)),
      el(
        "td",
        {},
        el("ul", { class: "reasons" }, (d.reasons || []).map((r) => el("li", {}, r))),
        d.requires && d.requires.length ? el("div", { class: "muted" }, `requires one of: ${d.requires.join(", ")}`) : null,
        d.transforms && Object.keys(d.transforms).length
          ? el("div", { class: "muted" }, `transforms: ${JSON.stringify(d.transforms)}`)
          : null,
      ),
      el("td", { class: "mono", title: d.policy_revision }, shortRev(d.policy_revision)),
    ),
  );
  show("decisions", table(["time", "device", "category", "flow", "outcome", "reasons", "policy"], rows));
}

function renderRejections(page) {
  const codes = Object.entries(page.counts).sort((a, b) => b[1] - a[1]);
  if (codes.length === 0) {
    show("rejections", note("No rejected messages."));
    return;
  }
  const byCode = table(
    ["code", { label: "messages", num: true }],
    codes.map(([code, n]) => el("tr", { "data-code": code }, el("td", { class: "mono" }, code), el("td", { class: "num" }, num(n)))),
  );
  const recent = table(
    ["time", "code", "device", "detail"],
    page.items.map((r) =>
      el(
        "tr",
        {},
        el("td", { title: r.received_at }, clock(r.received_at)),
        el("td", { class: "mono" }, r.code),
        el("td", {}, r.device_id ?? clip(r.topic, "muted")),
        el("td", { class: "detail" }, r.detail),
      ),
    ),
  );
  show("rejections", byCode, el("h3", {}, "Latest rejected messages"), recent);
}

function renderDevices(page) {
  const rows = page.items.map((d) =>
    el(
      "tr",
      { "data-device": d.device_id, "data-status": d.status },
      el("td", { title: d.description || null }, el("a", { href: pageUrl("device", { id: d.device_id }) }, d.device_id)),
      el("td", {}, d.site, " ", el("span", { class: "muted" }, d.country)),
      el("td", {}, d.profile),
      el(
        "td",
        {
          title: d.gateway
            ? `gateway ${d.gateway.gateway_id} since ${d.gateway.at}${d.gateway.reason ? ` (${d.gateway.reason})` : ""}`
            : "no gateway has reported this device",
        },
        el("span", { class: `pill ${safeClass(d.status, ["online", "offline"], "unknown")}` }, d.status),
      ),
      el("td", { title: d.progress ? d.progress.last_seen_at : null }, ago(d.progress && d.progress.last_seen_at)),
      el("td", { class: "num" }, d.progress ? num(d.progress.last_seq) : "–"),
      el("td", { class: "num" }, d.progress ? num(d.progress.readings) : "–"),
    ),
  );
  const headers = ["device", "site", "profile", "status", "last seen", { label: "last seq", num: true }, { label: "readings", num: true }];
  show("devices", table(headers, rows));
}

// --- store jobs ----------------------------------------------------------------------------------
function renderStoreJobs(list) {
  const rows = [];
  for (const store of list.stores) {
    if (store.error) {
      rows.push(el("tr", { class: "bad", "data-region": store.region }, el("td", {}, store.region),
        el("td", { colspan: "5" }, `unreadable: ${store.error}`)));
    } else if (store.backend === "plain") {
      rows.push(el("tr", { "data-region": store.region }, el("td", {}, store.region),
        el("td", { colspan: "5", class: "muted" }, "plain PostgreSQL: no jobs in the store (the ingest's maintenance)")));
    }
    for (const job of store.jobs || []) {
      const status = job.problem ? job.problem.split(":")[0] : job.last_run_status || "not run yet";
      rows.push(el("tr", { class: job.problem ? "bad" : null, "data-region": store.region, "data-job": job.name },
        el("td", {}, store.region),
        el("td", { class: "mono" }, job.name),
        el("td", { title: job.problem || job.last_error || "" }, status),
        el("td", { class: "num", title: job.last_error || "" }, num(job.consecutive_failures)),
        el("td", { title: job.last_run_started_at || "" }, ago(job.last_run_started_at)),
        el("td", { title: job.next_start || "" }, job.next_start ? clock(job.next_start) : "–")));
    }
  }
  show("store-jobs", rows.length ? table(["region", "job", "status", { label: "failures in a row", num: true },
    "last run", "next start"], rows) : note("No region store."));
}

function renderLinks(body) {
  if (!body.cell) {
    show("links", note(`No residency cells: this ingest writes every region (${body.regions.join(", ")}).`));
    return;
  }
  const head = note(`Cell ${body.cell} (${body.country}): regions ${body.regions.join(", ")}; sites ` +
    `${body.sites.join(", ") || "none"}.`);
  if (!body.links.length) {
    show("links", head, note("It sends no parts to another cell (it only receives)."));
    return;
  }
  const rows = body.links.map((link) => el("tr", { class: link.up === false ? "bad" : null, "data-peer": link.peer },
    el("td", {}, link.peer),
    el("td", {}, link.up === true ? "up" : link.up === false ? "down" : "unknown"),
    el("td", { class: "num" }, num(link.outbox_parts)),
    el("td", { class: "num" }, `${Number(link.lag_s).toFixed(1)} s`),
    el("td", { class: "num" }, num(link.sent)),
    el("td", { class: "num" }, num(link.resent)),
    el("td", { class: "num" }, num(link.receipted)),
    el("td", { title: link.last_error || "" }, link.last_error || "–")));
  show("links", head, table(["to cell", "bridge", { label: "parts waiting", num: true }, { label: "lag", num: true },
    { label: "sent", num: true }, { label: "re-sent", num: true }, { label: "receipted", num: true }, "last error"],
    rows));
}

// --- polling -------------------------------------------------------------------------------------
const skip = Promise.resolve(null); // a panel the user's roles cannot read: not asked for

async function tick() {
  state.timer = null;
  if (session.stopped) return; // the token was refused: the sign-in form is shown, nothing more is asked
  const w = state.windowS;
  const telemetry = hasRole(...TELEMETRY);
  const decisionsToo = hasRole(...DECISIONS);
  const jobsToo = hasRole(...STORE_JOBS);
  const ratesDue = telemetry && (state.ticks++ % RATES_EVERY === 0 || !state.series);
  const [health, stats, regions, flows, decisions, rejections, devices, queues, rates, storeJobs, links] =
    await Promise.allSettled([
    getJSON("/health", [503]),
    telemetry ? getJSON("/stats") : skip,
    getJSON("/regions"),
    decisionsToo ? getJSON(`/flows?window_s=${w}`) : skip,
    decisionsToo ? getJSON("/decisions?limit=15") : skip,
    telemetry ? getJSON("/rejections?limit=8") : skip,
    telemetry ? getJSON("/devices?limit=1000") : skip,
    backlog(),
    ratesDue ? getJSON("/rates?window_s=900&step_s=30") : skip,
    jobsToo ? getJSON("/stores/jobs") : skip,
    telemetry ? getJSON("/links") : skip,
  ]);
  if (rates.status === "fulfilled" && rates.value) state.series = rates.value;
  guard(health, null, renderHealth);
  if (health.status === "rejected") {
    const chip = byId("health-chip");
    chip.className = "chip bad";
    chip.textContent = "health: API unreachable";
    chip.title = String(health.reason && health.reason.message);
  }
  const value = (result) => (result.status === "fulfilled" ? result.value : null);
  guard({ status: "fulfilled" }, "overview", () => renderOverview(value(devices), value(queues), value(health)));
  if (telemetry) {
    guard(stats, "kpis", (s) => {
      renderKpis(s);
      renderBroker(s);
      updateRates(s);
    });
    guard(regions, "rates", (r) => renderRates(r));
    guard(rejections, "rejections", renderRejections);
    guard(devices, "devices", renderDevices);
  }
  const regionList = value(regions) || [];
  if (decisionsToo) {
    guard(flows, "flows", (f) => renderFlows(f, regionList));
    guard(decisions, "decisions", renderDecisions);
  }
  if (jobsToo) guard(storeJobs, "store-jobs", renderStoreJobs);
  if (telemetry) guard(links, "links", renderLinks);
  byId("updated-chip").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.updated = String(Date.now());
  schedule();
}

function schedule() {
  if (!state.paused && !document.hidden && !session.stopped && state.timer === null) state.timer = setTimeout(tick, POLL_MS);
}

async function start() {
  const me = await ready;
  if (!me) return; // not signed in: the sign-in form asks for a token; nothing is polled
  if (!restrict("kpis", TELEMETRY, "pipeline counters")) byId("broker-chip").hidden = true;
  restrict("rates-panel", TELEMETRY, "rates per region");
  restrict("rejections-panel", TELEMETRY, "rejections");
  restrict("devices-panel", TELEMETRY, "devices");
  restrict("flows-panel", DECISIONS, "the flow matrix");
  restrict("decisions-panel", DECISIONS, "recent decisions");
  restrict("store-jobs-panel", STORE_JOBS, "store jobs");
  restrict("links-panel", TELEMETRY, "the cell's links");
  const fromQuery = Number(query("window"));
  if (WINDOWS.includes(fromQuery)) state.windowS = fromQuery;
  byId("window-select").value = String(state.windowS);
  byId("pause-btn").addEventListener("click", (event) => {
    state.paused = !state.paused;
    event.target.textContent = state.paused ? "Resume" : "Pause";
    if (state.paused && state.timer !== null) {
      clearTimeout(state.timer);
      state.timer = null;
    } else {
      schedule();
    }
  });
  byId("window-select").addEventListener("change", (event) => {
    state.windowS = Number(event.target.value) || 300;
    setQuery({ window: state.windowS === 300 ? null : state.windowS });
    if (state.timer !== null) clearTimeout(state.timer);
    tick();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) schedule();
  });
  tick();
}

start();

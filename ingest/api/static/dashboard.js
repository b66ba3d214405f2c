// Live dashboard of the ingest API. Plain JS, no dependencies, no network beyond this server.
// Every value from the API reaches the page as text (textContent / text nodes), never as HTML.
"use strict";

(() => {
  const API = "api/v1"; // relative to /dashboard, so the page also works behind a path prefix
  const POLL_MS = 2000;
  const OUTCOMES = ["stored", "transformed", "denied"];
  const state = { paused: false, timer: null, prevRows: null, prevAt: 0, rates: {}, windowS: 300 };
  const fmt = new Intl.NumberFormat();
  const fmt1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const fmt2 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const perSecond = (n) => (n === undefined ? "–" : n < 10 ? fmt2.format(n) : fmt1.format(n));

  // --- DOM helpers (text only) ---------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "title") node.title = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const byId = (id) => document.getElementById(id);
  const show = (id, ...nodes) => byId(id).replaceChildren(...nodes);
  const note = (text) => el("p", { class: "empty-note" }, text);
  const fail = (err) => el("p", { class: "error" }, `unavailable: ${err.message || err}`);
  const num = (n) => (typeof n === "number" ? fmt.format(n) : "–");
  const safeClass = (value, allowed, fallback) => (allowed.includes(value) ? value : fallback);

  function table(headers, rows) {
    const head = el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label ?? h)));
    return el("table", {}, el("thead", {}, head), el("tbody", {}, rows));
  }

  function ago(iso) {
    if (!iso) return "never";
    const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (!Number.isFinite(seconds)) return String(iso);
    if (seconds < 2) return "just now";
    if (seconds < 120) return `${seconds} s ago`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
    return new Date(iso).toLocaleString();
  }
  const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");

  async function getJSON(path, okStatuses = []) {
    const response = await fetch(`${API}${path}`, { headers: { Accept: "application/json" }, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok && !okStatuses.includes(response.status)) {
      const detail = body && typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
      throw new Error(detail);
    }
    return body;
  }

  // --- header --------------------------------------------------------------------------------
  function renderHealth(health) {
    const chip = byId("health-chip");
    const detail = byId("health-detail");
    const ok = health.status === "ok";
    chip.className = `chip ${ok ? "ok" : "bad"}`;
    chip.textContent = `health: ${ok ? "ok" : "degraded"}`;
    const failing = Object.entries(health.checks || {}).filter(([, c]) => !c.ok);
    chip.title = Object.entries(health.checks || {}).map(([name, c]) => `${name}: ${c.detail}`).join("\n");
    detail.hidden = failing.length === 0;
    detail.textContent = failing.map(([name, c]) => `${name}: ${c.detail}`).join(" · ");
    const policy = byId("policy-chip");
    policy.textContent = `policy: ${health.policy_revision || "none"}`;
    policy.title = health.policy_revision || "no policy loaded";
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

  // --- counters and rates --------------------------------------------------------------------
  function card(label, value, title) {
    return el("div", { class: "card", title }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
  }

  function renderKpis(stats) {
    if (!stats || stats.pipeline === null) {
      show("kpis", card("pipeline", "not in this process", "GET /api/v1/stats returned pipeline: null"));
      return;
    }
    const m = stats.messages || {};
    const d = stats.decisions || {};
    show(
      "kpis",
      card("messages received", num(m.received)),
      card("messages stored", num(m.stored)),
      card("messages rejected", num(m.rejected)),
      card("in flight (unacked)", num(stats.inflight)),
      card("decisions stored", num(d.stored || 0)),
      card("decisions transformed", num(d.transformed || 0)),
      card("decisions denied", num(d.denied || 0)),
      card("store errors", num(stats.store_errors), stats.last_error || ""),
      card("last commit", ago(stats.last_commit_at), stats.last_commit_at || ""),
    );
  }

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

  function renderRates(regions, flows) {
    const windowRate = {};
    for (const total of (flows && flows.totals) || []) {
      const kept = (total.outcomes.stored?.readings || 0) + (total.outcomes.transformed?.readings || 0);
      windowRate[total.region] = kept / flows.window_s;
    }
    const names = regions.map((r) => r.name);
    const max = Math.max(1e-9, ...names.map((n) => state.rates[n] || 0));
    const rows = regions.map((region) => {
      const live = state.rates[region.name];
      const width = `${Math.round(((live || 0) / max) * 100)}%`;
      const bar = el("div", { class: "bar" });
      bar.style.width = width;
      return el(
        "tr",
        {},
        el("td", {}, region.name, " ", el("span", { class: "muted" }, region.country)),
        el("td", { class: "num" }, perSecond(live)),
        el("td", {}, el("div", { class: "bar-track" }, bar)),
        el("td", { class: "num" }, perSecond(windowRate[region.name])),
      );
    });
    show("rates", table(["region", { label: "live /s", num: true }, "", { label: "window avg /s", num: true }], rows));
  }

  // --- flow matrix ---------------------------------------------------------------------------
  function renderFlows(flows, regions) {
    const regionNames = regions.map((r) => r.name);
    for (const f of flows.flows) if (!regionNames.includes(f.region)) regionNames.push(f.region);
    const origins = [...new Set(flows.flows.map((f) => f.origin_country))].sort();
    if (origins.length === 0) {
      show("flows", note(`No decisions in the last ${fmt.format(flows.window_s)} s.`));
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
        {},
        el("th", { class: "origin" }, origin),
        regionNames.map((region) => {
          const cell = cells[`${origin}\u0000${region}`];
          if (!cell) return el("td", { class: "cell empty" }, "·");
          const title = Object.entries(cell.categories)
            .map(([category, c]) => `${category}: ${OUTCOMES.map((o) => `${o} ${c[o]}`).join(", ")}`)
            .join("\n");
          return el(
            "td",
            { class: "cell", title },
            el(
              "div",
              { class: "counts" },
              OUTCOMES.filter((o) => cell[o] > 0).map((o) => el("span", { class: `pill ${o}`, title: o }, num(cell[o]))),
            ),
            el("div", { class: "readings" }, `${num(cell.readings)} readings`),
          );
        }),
      ),
    );
    const totals = el(
      "tr",
      {},
      el("th", {}, "total"),
      regionNames.map((region) => {
        const t = flows.totals.find((x) => x.region === region);
        if (!t || t.decisions === 0) return el("td", { class: "cell empty" }, "·");
        return el(
          "td",
          { class: "cell" },
          el(
            "div",
            { class: "counts" },
            OUTCOMES.filter((o) => t.outcomes[o]?.decisions > 0).map((o) =>
              el("span", { class: `pill ${o}`, title: o }, num(t.outcomes[o].decisions)),
            ),
          ),
          el("div", { class: "readings" }, `${num(t.readings)} readings`),
        );
      }),
    );
    show("flows", el("table", { class: "matrix" }, el("thead", {}, header), el("tbody", {}, body, totals)));
  }

  // --- decisions, rejections, devices --------------------------------------------------------
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
        el("td", {}, d.device_id, el("span", { class: "muted" }, ` #${d.seq}`)),
        el("td", {}, d.category),
        el("td", {}, `${d.origin_country} → ${d.region} (${d.destination_country})`),
        el("td", {}, el("span", { class: `pill ${safeClass(d.outcome, OUTCOMES, "unknown")}` }, d.outcome)),
        el(
          "td",
          {},
          el("ul", { class: "reasons" }, (d.reasons || []).map((r) => el("li", {}, r))),
          d.requires && d.requires.length ? el("div", { class: "muted" }, `requires one of: ${d.requires.join(", ")}`) : null,
          d.transforms && Object.keys(d.transforms).length
            ? el("div", { class: "muted" }, `transforms: ${JSON.stringify(d.transforms)}`)
            : null,
        ),
        el("td", { class: "mono", title: d.policy_revision }, String(d.policy_revision).slice(0, 19)),
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
    const counts = table(
      ["code", { label: "messages", num: true }],
      codes.map(([code, n]) => el("tr", {}, el("td", { class: "mono" }, code), el("td", { class: "num" }, num(n)))),
    );
    const recent = table(
      ["time", "code", "device", "detail"],
      page.items.map((r) =>
        el(
          "tr",
          {},
          el("td", { title: r.received_at }, clock(r.received_at)),
          el("td", { class: "mono" }, r.code),
          el("td", {}, r.device_id ?? el("span", { class: "muted" }, r.topic)),
          el("td", {}, r.detail),
        ),
      ),
    );
    show("rejections", counts, el("h2", { class: "muted" }, "latest"), recent);
  }

  function renderDevices(page) {
    const rows = page.items.map((d) =>
      el(
        "tr",
        {},
        el("td", { title: d.description || null }, d.device_id),
        el("td", {}, d.site, " ", el("span", { class: "muted" }, d.country)),
        el("td", {}, d.profile),
        el(
          "td",
          { title: d.gateway ? `gateway ${d.gateway.gateway_id} since ${d.gateway.at}${d.gateway.reason ? ` (${d.gateway.reason})` : ""}` : "no gateway has reported this device" },
          el("span", { class: `pill ${safeClass(d.status, ["online", "offline"], "unknown")}` }, d.status),
        ),
        el("td", { title: d.progress ? d.progress.last_seen_at : null }, ago(d.progress && d.progress.last_seen_at)),
        el("td", { class: "num" }, d.progress ? num(d.progress.last_seq) : "–"),
        el("td", { class: "num" }, d.progress ? num(d.progress.readings) : "–"),
      ),
    );
    show(
      "devices",
      table(["device", "site", "profile", "status", "last seen", { label: "last seq", num: true }, { label: "readings", num: true }], rows),
    );
  }

  // --- polling -------------------------------------------------------------------------------
  async function tick() {
    state.timer = null;
    const w = state.windowS;
    const [health, stats, regions, flows, decisions, rejections, devices] = await Promise.allSettled([
      getJSON("/health", [503]),
      getJSON("/stats"),
      getJSON("/regions"),
      getJSON(`/flows?window_s=${w}`),
      getJSON("/decisions?limit=15"),
      getJSON("/rejections?limit=8"),
      getJSON("/devices?limit=1000"),
    ]);
    const guard = (result, id, render) => {
      try {
        if (result.status === "fulfilled") render(result.value);
        else if (id) show(id, fail(result.reason));
      } catch (err) {
        if (id) show(id, fail(err));
      }
    };
    guard(health, null, renderHealth);
    if (health.status === "rejected") {
      const chip = byId("health-chip");
      chip.className = "chip bad";
      chip.textContent = "health: API unreachable";
      chip.title = String(health.reason && health.reason.message);
    }
    guard(stats, "kpis", (s) => {
      renderKpis(s);
      renderBroker(s);
      updateRates(s);
    });
    const regionList = regions.status === "fulfilled" ? regions.value : [];
    guard(flows, "flows", (f) => renderFlows(f, regionList));
    guard(regions, "rates", (r) => renderRates(r, flows.status === "fulfilled" ? flows.value : null));
    guard(decisions, "decisions", renderDecisions);
    guard(rejections, "rejections", renderRejections);
    guard(devices, "devices", renderDevices);
    byId("updated-chip").textContent = `updated ${new Date().toLocaleTimeString()}`;
    schedule();
  }

  function schedule() {
    if (!state.paused && !document.hidden && state.timer === null) state.timer = setTimeout(tick, POLL_MS);
  }

  function start() {
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
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) schedule();
    });
    tick();
  }

  document.addEventListener("DOMContentLoaded", start);
})();

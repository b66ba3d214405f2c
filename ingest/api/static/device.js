// Device page: one device's numeric metrics over a window (min–max band and average line on <canvas>),
// its latest values per region store, and its sequence gaps. Data reaches the page as text only.
import {
  ago, byId, el, fail, getJSON, note, num, pageUrl, query, safeClass, setQuery, show, stamp, table, time, value,
} from "./common.js";

const REFRESH_MS = 15000;
// window -> [seconds, bucket of GET /devices/{id}/series, bucket length in ms, time axis tick in ms]
const WINDOWS = {
  "1h": [3600, "1m", 60e3, 15 * 60e3],
  "6h": [21600, "5m", 300e3, 3600e3],
  "24h": [86400, "5m", 300e3, 4 * 3600e3],
  "7d": [604800, "1h", 3600e3, 86400e3],
};
const state = {
  id: query("id") || "",
  window: WINDOWS[query("window")] ? query("window") : "1h",
  region: query("region") || "", // charts read this region store ("" = the device's home region)
  timer: null,
  busy: false, // a refresh is running
  again: false, // another refresh was asked for meanwhile
};
const charts = new Map(); // metric -> {figure, canvas, readout, series, hover}

// --- chart ---------------------------------------------------------------------------------------
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function segments(points, bucketMs) {
  // Break the line and band where buckets are missing (no data there: nothing is drawn).
  const out = [];
  let current = [];
  for (const p of points) {
    if (current.length && p.t - current[current.length - 1].t > bucketMs * 1.5) {
      out.push(current);
      current = [];
    }
    current.push(p);
  }
  if (current.length) out.push(current);
  return out;
}

/** About four round steps (1, 2, 2.5, 5 x 10^n) covering [lo, hi]. */
function niceTicks(lo, hi) {
  const raw = (hi - lo) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const first = Math.floor(lo / step) * step;
  const ticks = [];
  for (let v = first; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < hi) ticks.push(Number((first + ticks.length * step).toPrecision(12)));
  // As many decimals as the step needs (0.005 -> 3), so no two labels read the same.
  const stepMag = 10 ** Math.floor(Math.log10(step) + 1e-9);
  const decimals = Math.max(0, -Math.round(Math.log10(stepMag)) + (Math.abs(step / stepMag - 2.5) < 1e-9 ? 1 : 0));
  const format = new Intl.NumberFormat(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
  return { ticks, label: (v) => format.format(v) };
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return spanMs > 86400e3 ? `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${hm}` : hm;
}

function draw(chart) {
  const { canvas, series, hover } = chart;
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  const pad = { left: 56, right: 12, top: 10, bottom: 22 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const t0 = Date.parse(series.start);
  const t1 = Date.parse(series.end);
  const pts = series.points.map((p) => ({ t: Date.parse(p.ts), min: p.min, max: p.max, avg: p.avg, count: p.count }));
  let lo = Math.min(...pts.map((p) => p.min));
  let hi = Math.max(...pts.map((p) => p.max));
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (hi - lo < 1e-9) [lo, hi] = [lo - Math.max(1, Math.abs(lo) * 0.05), hi + Math.max(1, Math.abs(hi) * 0.05)];
  const { ticks: yTicks, label } = niceTicks(lo, hi);
  [lo, hi] = [yTicks[0], yTicks[yTicks.length - 1]];
  const [, , bucketMs, tickMs] = WINDOWS[state.window];
  const x = (t) => pad.left + ((t + bucketMs / 2 - t0) / (t1 - t0)) * plotW; // bucket centre
  const y = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * plotH;

  ctx.strokeStyle = css("--line");
  ctx.fillStyle = css("--muted");
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of yTicks) {
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, yy);
    ctx.lineTo(width - pad.right, yy);
    ctx.stroke();
    ctx.fillText(label(v), pad.left - 6, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  // Time ticks on round local times (every 15 min, hour, 4 h or day, by window).
  const offset = new Date(t0).getTimezoneOffset() * 60e3;
  for (let t = Math.ceil((t0 - offset) / tickMs) * tickMs + offset; t <= t1; t += tickMs) {
    const xx = Math.round(pad.left + ((t - t0) / (t1 - t0)) * plotW) + 0.5;
    ctx.beginPath();
    ctx.moveTo(xx, height - pad.bottom);
    ctx.lineTo(xx, height - pad.bottom + 4);
    ctx.stroke();
    if (xx > pad.left + 24 && xx < width - pad.right - 24) ctx.fillText(timeLabel(t, t1 - t0), xx, height - pad.bottom + 6);
  }

  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.left, pad.top, plotW, plotH);
  ctx.clip();
  const accent = css("--accent");
  for (const seg of segments(pts, bucketMs)) {
    ctx.fillStyle = css("--band");
    ctx.beginPath();
    seg.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.max)) : ctx.moveTo(x(p.t), y(p.max))));
    for (const p of [...seg].reverse()) ctx.lineTo(x(p.t), y(p.min));
    ctx.closePath();
    ctx.fill();
    if (seg.length === 1) {
      const [p] = seg;
      ctx.strokeStyle = accent;
      ctx.beginPath();
      ctx.moveTo(x(p.t), y(p.min));
      ctx.lineTo(x(p.t), y(p.max));
      ctx.stroke();
    }
    ctx.strokeStyle = accent;
    ctx.lineWidth = 1.75;
    ctx.beginPath();
    seg.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.avg)) : ctx.moveTo(x(p.t), y(p.avg))));
    ctx.stroke();
    ctx.fillStyle = accent;
    if (seg.length < 3) for (const p of seg) ctx.fillRect(x(p.t) - 2.5, y(p.avg) - 2.5, 5, 5);
  }
  if (hover !== null && pts[hover]) {
    const p = pts[hover];
    ctx.strokeStyle = css("--muted");
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(x(p.t), pad.top);
    ctx.lineTo(x(p.t), pad.top + plotH);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = accent;
    ctx.beginPath();
    ctx.arc(x(p.t), y(p.avg), 3.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.restore();
  chart.xOf = (i) => x(pts[i].t);
}

function readout(chart) {
  const p = chart.hover === null ? null : chart.series.points[chart.hover];
  const unit = chart.series.unit ? ` ${chart.series.unit}` : "";
  chart.readout.textContent = p
    ? `${stamp(p.ts)}: avg ${value(p.avg)}${unit}, min ${value(p.min)}, max ${value(p.max)}, ${num(p.count)} readings`
    : "\u00a0";
}

function onHover(chart, event) {
  if (!chart.series.points.length || !chart.xOf) return;
  const rect = chart.canvas.getBoundingClientRect();
  const px = event.clientX - rect.left;
  let best = 0;
  chart.series.points.forEach((_, i) => {
    if (Math.abs(chart.xOf(i) - px) < Math.abs(chart.xOf(best) - px)) best = i;
  });
  if (chart.hover !== best) {
    chart.hover = best;
    draw(chart);
    readout(chart);
  }
}

function chartFigure(metric) {
  const canvas = el("canvas", { role: "img" });
  const chart = {
    canvas, readout: el("div", { class: "readout muted" }, "\u00a0"), caption: el("figcaption", {}), hover: null, series: null,
  };
  chart.figure = el("figure", { class: "chart", "data-metric": metric }, chart.caption, canvas, chart.readout);
  canvas.addEventListener("mousemove", (event) => onHover(chart, event));
  canvas.addEventListener("mouseleave", () => {
    chart.hover = null;
    draw(chart);
    readout(chart);
  });
  return chart;
}

function renderChart(chart, series) {
  chart.series = series;
  chart.hover = null;
  const pts = series.points;
  const avg = pts.reduce((s, p) => s + p.avg * p.count, 0) / Math.max(1, pts.reduce((s, p) => s + p.count, 0));
  const stats = pts.length
    ? `min ${value(Math.min(...pts.map((p) => p.min)))} · avg ${value(avg)} · max ${value(Math.max(...pts.map((p) => p.max)))}`
    : "no readings in this window";
  chart.caption.replaceChildren(
    el("strong", {}, series.name),
    el("span", { class: "muted" }, series.unit ? `(${series.unit})` : ""),
    el("span", { class: "tag" }, series.category),
    el("span", { class: "muted stats" },
      `${stats} · ${num(pts.length)} bucket${pts.length === 1 ? "" : "s"} of ${series.bucket} in ${series.region}`),
  );
  const f = chart.figure;
  Object.assign(f.dataset, { points: pts.length, bucket: series.bucket, start: series.start, end: series.end, region: series.region });
  chart.canvas.setAttribute("aria-label", `${series.name}: ${stats}`);
  draw(chart);
  readout(chart);
}

// --- data ----------------------------------------------------------------------------------------
const enc = encodeURIComponent;

function renderInfo(device, gaps) {
  const p = device.progress;
  const status = safeClass(device.status, ["online", "offline"], "unknown");
  const chip = byId("status-chip");
  chip.className = `chip ${status === "online" ? "ok" : status === "offline" ? "bad" : ""}`;
  chip.textContent = `${device.device_id}: ${device.status}`;
  const info = (label, val, title) =>
    el("div", { class: "card", title }, el("div", { class: "label" }, label), el("div", { class: "value small" }, val));
  show(
    "device-info",
    info("site", `${device.site} · ${device.country}`, device.site_name),
    info("home region", device.home_region),
    info("profile", device.profile, device.description || null),
    info("status", el("span", { class: `pill ${status}` }, device.status),
      device.gateway
        ? `gateway ${device.gateway.gateway_id} ${device.gateway.state} since ${device.gateway.at}`
        : "no gateway has reported this device"),
    info("last seen", ago(p && p.last_seen_at), p ? p.last_seen_at : null),
    info("last seq · batches", p ? `${num(p.last_seq)} · ${num(p.batches)}` : "–"),
    info("readings", p ? num(p.readings) : "–"),
    info("open gaps", gaps ? num(gaps.items.filter((g) => !g.closed_at).length) : "–"),
  );
}

function latestCell(f) {
  if (!f) return el("td", { class: "num muted", title: "nothing of this field stored in this region" }, "–");
  const shown = f.withheld
    ? el("span", { class: "muted", title: "restricted data of a region outside your user's region scope" }, "withheld")
    : value(f.value);
  return el(
    "td",
    { class: "num", "data-region": f.region, title: `decision ${f.decision_id}, policy ${f.policy_revision}` },
    shown,
    f.transform ? el("span", { class: "tag", title: "transform applied by the decision" }, f.transform) : null,
    el("div", { class: "muted small" }, time(f.ts, ago(f.ts))),
  );
}

function renderLatest(latests) {
  // One row per field, one column per region store: where each value came from.
  const regions = latests.map((l) => l.region);
  const fields = new Map();
  for (const latest of latests) {
    for (const f of latest.fields) {
      const row = fields.get(f.name) || { name: f.name, category: f.category, unit: f.unit, byRegion: {} };
      row.byRegion[f.region] = f;
      fields.set(f.name, row);
    }
  }
  if (!fields.size) return show("latest", note("No stored readings of this device in its regions."));
  const rows = [...fields.values()].sort((a, b) => a.name.localeCompare(b.name)).map((f) =>
    el(
      "tr",
      { "data-field": f.name, "data-category": f.category },
      el("td", {}, f.name, f.unit ? el("span", { class: "muted" }, ` ${f.unit}`) : null),
      el("td", {}, el("span", { class: "tag" }, f.category)),
      regions.map((r) => latestCell(f.byRegion[r])),
    ),
  );
  return show("latest", table(["field", "category", ...regions.map((r) => ({ label: r, num: true }))], rows, { class: "latest" }));
}

function renderGaps(gaps) {
  if (!gaps.items.length) return show("gaps", note("No gaps: every batch number arrived."));
  const rows = gaps.items.map((g) =>
    el(
      "tr",
      { "data-gap": `${g.first_missing}-${g.last_missing}` },
      el("td", { class: "num" },
        g.first_missing === g.last_missing ? num(g.first_missing) : `${num(g.first_missing)}–${num(g.last_missing)}`),
      el("td", { class: "num" }, num(g.missing)),
      el("td", {}, time(g.detected_at)),
      el("td", {}, g.closed_at ? el("span", { class: "pill online" }, "closed") : el("span", { class: "pill offline" }, "open")),
      el("td", {}, g.closed_at ? time(g.closed_at) : "–"),
    ),
  );
  return show("gaps", table([{ label: "missing seq", num: true }, { label: "batches", num: true }, "detected", "state", "closed"], rows));
}

async function renderCharts(device, latestHere) {
  const [seconds, bucket] = WINDOWS[state.window];
  const end = new Date();
  const start = new Date(end.getTime() - seconds * 1000);
  byId("window-note").textContent = `${stamp(start.toISOString())} – ${stamp(end.toISOString())}, buckets of ${bucket}`;
  const metrics = latestHere.fields.filter((f) => typeof f.value === "number" && !f.withheld).map((f) => f.name).sort();
  if (!metrics.length) {
    charts.clear();
    return show("charts", note(`No numeric readings of this device in ${latestHere.region}.`));
  }
  const params = `start=${enc(start.toISOString())}&end=${enc(end.toISOString())}&bucket=${bucket}&region=${enc(latestHere.region)}`;
  const results = await Promise.allSettled(
    metrics.map((name) => getJSON(`/devices/${enc(device.device_id)}/series?name=${enc(name)}&${params}`)),
  );
  for (const name of [...charts.keys()]) if (!metrics.includes(name)) charts.delete(name);
  const figures = metrics.map((name, i) => {
    const result = results[i];
    if (result.status === "rejected") {
      return el("figure", { class: "chart", "data-metric": name, "data-error": "1" }, el("figcaption", {}, name), fail(result.reason));
    }
    if (!charts.has(name)) charts.set(name, chartFigure(name));
    return charts.get(name).figure;
  });
  show("charts", ...figures); // in the document first: the canvases need their layout size to draw
  metrics.forEach((name, i) => results[i].status === "fulfilled" && renderChart(charts.get(name), results[i].value));
  byId("charts").dataset.rendered = `${device.device_id}|${state.window}|${latestHere.region}`;
  return undefined;
}

async function refresh() {
  if (!state.id) return;
  if (state.busy) {
    state.again = true; // a newer choice: render it once the current refresh is done
    return;
  }
  state.busy = true;
  state.again = false;
  clearTimeout(state.timer);
  try {
    const id = enc(state.id);
    let device;
    try {
      device = await getJSON(`/devices/${id}`);
    } catch (err) {
      byId("status-chip").textContent = err.status === 404 ? "unknown device" : "device unavailable";
      show("device-info", el("div", { class: "panel wide" }, fail(err)));
      for (const target of ["charts", "latest", "gaps"]) show(target, note("No device to show."));
      return;
    }
    byId("region-select").parentElement.hidden = false;
    byId("device-info").classList.remove("picker");
    const sites = await getJSON("/sites");
    const site = sites.find((s) => s.site_id === device.site);
    const regions = site ? site.candidate_regions : [device.home_region];
    const select = byId("region-select");
    if (!regions.includes(state.region)) state.region = device.home_region;
    select.replaceChildren(...regions.map((r) =>
      el("option", { value: r, selected: r === state.region }, r === device.home_region ? `${r} (home)` : r)));
    const [latests, gaps] = await Promise.allSettled([
      Promise.all(regions.map((r) => getJSON(`/devices/${id}/latest?region=${enc(r)}`))),
      getJSON(`/gaps?device_id=${id}&state=all`),
    ]);
    renderInfo(device, gaps.status === "fulfilled" ? gaps.value : null);
    if (gaps.status === "fulfilled") renderGaps(gaps.value);
    else show("gaps", fail(gaps.reason));
    if (latests.status === "rejected") {
      show("latest", fail(latests.reason));
      show("charts", fail(latests.reason));
    } else {
      renderLatest(latests.value);
      await renderCharts(device, latests.value[regions.indexOf(state.region)]);
    }
    byId("updated-chip").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } finally {
    state.busy = false;
    if (state.again) refresh();
    else if (byId("auto-refresh").checked) state.timer = setTimeout(refresh, REFRESH_MS);
  }
}

function syncQuery() {
  setQuery({ id: state.id || null, window: state.window === "1h" ? null : state.window, region: state.region || null });
  for (const b of byId("window-buttons").children) b.setAttribute("aria-pressed", String(b.dataset.window === state.window));
}

async function start() {
  show("window-buttons", ...Object.keys(WINDOWS).map((w) =>
    el("button", { type: "button", class: "btn", "data-window": w, onclick: () => {
      state.window = w;
      syncQuery();
      refresh();
    } }, w)));
  byId("region-select").addEventListener("change", (event) => {
    state.region = event.target.value;
    syncQuery();
    refresh();
  });
  byId("device-select").addEventListener("change", (event) => {
    state.id = event.target.value;
    state.region = "";
    charts.clear();
    syncQuery();
    refresh();
  });
  byId("refresh-btn").addEventListener("click", refresh);
  byId("auto-refresh").addEventListener("change", (event) => (event.target.checked ? refresh() : clearTimeout(state.timer)));
  window.addEventListener("resize", () => charts.forEach((c) => c.series && draw(c)));
  syncQuery();
  try {
    const devices = await getJSON("/devices?limit=1000");
    byId("device-select").append(...devices.items.map((d) =>
      el("option", { value: d.device_id, selected: d.device_id === state.id }, `${d.device_id} (${d.site}, ${d.status})`)));
    if (!state.id) {
      byId("status-chip").textContent = "no device chosen";
      byId("region-select").parentElement.hidden = true;
      show("charts", note("Choose a device above, or one of the cards."));
      show("latest", note("No device chosen."));
      show("gaps", note("No device chosen."));
      byId("device-info").classList.add("picker");
      show("device-info", ...devices.items.map((d) => el(
        "a",
        { class: "card link", href: pageUrl("device", { id: d.device_id }) },
        el("div", { class: "label" }, `${d.site} · ${d.profile}`),
        el("div", { class: "value small" }, d.device_id),
        el("span", { class: `pill ${safeClass(d.status, ["online", "offline"], "unknown")}` }, d.status),
      )));
    }
  } catch (err) {
    show("device-info", fail(err));
  }
  refresh();
}

start();

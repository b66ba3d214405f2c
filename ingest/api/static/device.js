// Device page: one device's numeric metrics over a window (min–max band and average line on <canvas>), with
// zoom (drag across a chart) and pan, an overlay of a second device, and a CSV of what each chart shows; its
// latest values per region store, and its sequence gaps. Data reaches the page as text only.
import {
  ago, byId, clip, csv, el, fail, getJSON, note, num, pageUrl, query, ready, safeClass, saveFile, setQuery, show,
  stamp, table, time, value,
} from "./common.js";

const REFRESH_MS = 15000;
// window -> [seconds, bucket of GET /devices/{id}/series, time axis tick in ms]
const WINDOWS = {
  "5m": [300, "10s", 60e3],
  "15m": [900, "10s", 3 * 60e3],
  "1h": [3600, "1m", 15 * 60e3],
  "6h": [21600, "5m", 3600e3],
  "24h": [86400, "5m", 4 * 3600e3],
  "7d": [604800, "1h", 86400e3],
};
const BUCKET_MS = { "10s": 10e3, "1m": 60e3, "5m": 300e3, "1h": 3600e3, "1d": 86400e3 };
const TICKS_MS = [10e3, 30e3, 60e3, 2 * 60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 2 * 3600e3, 4 * 3600e3,
  6 * 3600e3, 12 * 3600e3, 86400e3];
const state = {
  id: query("id") || "",
  window: WINDOWS[query("window")] ? query("window") : "1h",
  region: query("region") || "", // charts read this region store ("" = the device's home region)
  compare: query("compare") || "", // a second device drawn over the first
  view: null, // zoomed span {start, end} in ms since the epoch; null: the window up to now
  timer: null,
  busy: false, // a refresh is running
  again: false, // another refresh was asked for meanwhile
};
const charts = new Map(); // metric -> {figure, canvas, readout, series, compare, hover, drag}
const COMPARE_COLOR = "#c2410c";

// --- time span and buckets -----------------------------------------------------------------------
/** The span the charts show: the zoomed view, or the window up to now. */
function span() {
  if (state.view) return state.view;
  const end = Date.now();
  return { start: end - WINDOWS[state.window][0] * 1000, end };
}

/** The finest bucket giving at most 360 points over ``ms`` (the window's own bucket when not zoomed). */
function bucketFor(ms) {
  if (!state.view) return WINDOWS[state.window][1];
  return Object.keys(BUCKET_MS).find((b) => ms / BUCKET_MS[b] <= 360) || "1d";
}

/** A round tick step leaving about 80 px per time label. */
function tickFor(ms, widthPx) {
  const most = Math.max(2, Math.floor(widthPx / 80));
  return TICKS_MS.find((t) => ms / t <= most) || 7 * 86400e3;
}

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
  const opts = spanMs <= 15 * 60e3 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  const hm = d.toLocaleTimeString([], opts);
  return spanMs > 86400e3 ? `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${hm}` : hm;
}

const PAD = { left: 56, right: 12, top: 10, bottom: 22 };

function pointsOf(series) {
  return series ? series.points.map((p) => ({ t: Date.parse(p.ts), min: p.min, max: p.max, avg: p.avg, count: p.count })) : [];
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
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const t0 = Date.parse(series.start);
  const t1 = Date.parse(series.end);
  const bucketMs = BUCKET_MS[series.bucket];
  const pts = pointsOf(series);
  const other = pointsOf(chart.compare);
  const all = [...pts, ...other];
  let lo = Math.min(...all.map((p) => p.min));
  let hi = Math.max(...all.map((p) => p.max));
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (hi - lo < 1e-9) [lo, hi] = [lo - Math.max(1, Math.abs(lo) * 0.05), hi + Math.max(1, Math.abs(hi) * 0.05)];
  const { ticks: yTicks, label } = niceTicks(lo, hi);
  [lo, hi] = [yTicks[0], yTicks[yTicks.length - 1]];
  const x = (t) => PAD.left + ((t + bucketMs / 2 - t0) / (t1 - t0)) * plotW; // bucket centre
  const y = (v) => PAD.top + (1 - (v - lo) / (hi - lo)) * plotH;
  chart.timeAt = (px) => t0 + ((px - PAD.left) / plotW) * (t1 - t0);

  ctx.strokeStyle = css("--line");
  ctx.fillStyle = css("--muted");
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of yTicks) {
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(PAD.left, yy);
    ctx.lineTo(width - PAD.right, yy);
    ctx.stroke();
    ctx.fillText(label(v), PAD.left - 6, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  // Time ticks on round local times, as many as the width has room for.
  const tickMs = tickFor(t1 - t0, plotW);
  const offset = new Date(t0).getTimezoneOffset() * 60e3;
  for (let t = Math.ceil((t0 - offset) / tickMs) * tickMs + offset; t <= t1; t += tickMs) {
    const xx = Math.round(PAD.left + ((t - t0) / (t1 - t0)) * plotW) + 0.5;
    ctx.beginPath();
    ctx.moveTo(xx, height - PAD.bottom);
    ctx.lineTo(xx, height - PAD.bottom + 4);
    ctx.stroke();
    if (xx > PAD.left + 24 && xx < width - PAD.right - 24) ctx.fillText(timeLabel(t, t1 - t0), xx, height - PAD.bottom + 6);
  }

  ctx.save();
  ctx.beginPath();
  ctx.rect(PAD.left, PAD.top, plotW, plotH);
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
  // the compared device: its average as a dashed line in another colour
  ctx.strokeStyle = COMPARE_COLOR;
  ctx.fillStyle = COMPARE_COLOR;
  ctx.lineWidth = 1.75;
  ctx.setLineDash([5, 3]);
  for (const seg of segments(other, bucketMs)) {
    ctx.beginPath();
    seg.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.avg)) : ctx.moveTo(x(p.t), y(p.avg))));
    ctx.stroke();
    if (seg.length < 3) for (const p of seg) ctx.fillRect(x(p.t) - 2.5, y(p.avg) - 2.5, 5, 5);
  }
  ctx.setLineDash([]);
  if (hover !== null && pts[hover]) {
    const p = pts[hover];
    ctx.strokeStyle = css("--muted");
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(x(p.t), PAD.top);
    ctx.lineTo(x(p.t), PAD.top + plotH);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = accent;
    ctx.beginPath();
    ctx.arc(x(p.t), y(p.avg), 3.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  if (chart.drag) {
    // the span being selected for a zoom
    const [a, b] = [chart.drag.x0, chart.drag.x1].sort((m, n) => m - n);
    ctx.fillStyle = "rgba(36, 87, 197, 0.12)";
    ctx.fillRect(a, PAD.top, b - a, plotH);
  }
  ctx.restore();
  chart.xOf = (i) => x(pts[i].t);
}

function readout(chart) {
  const p = chart.hover === null ? null : chart.series.points[chart.hover];
  const unit = chart.series.unit ? ` ${chart.series.unit}` : "";
  let text = "\u00a0";
  if (p) {
    text = `${stamp(p.ts)}: avg ${value(p.avg)}${unit}, min ${value(p.min)}, max ${value(p.max)}, ${num(p.count)} readings`;
    const twin = chart.compare && chart.compare.points.find((q) => q.ts === p.ts);
    if (twin) text += ` · ${chart.compare.device_id}: avg ${value(twin.avg)}${unit}`;
  }
  chart.readout.textContent = text;
}

function onHover(chart, event) {
  if (!chart.series || !chart.xOf) return;
  const rect = chart.canvas.getBoundingClientRect();
  const px = event.clientX - rect.left;
  if (chart.drag) {
    chart.drag.x1 = Math.max(PAD.left, Math.min(px, rect.width - PAD.right));
    draw(chart);
    return;
  }
  if (!chart.series.points.length) return;
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

// Zoom: press, drag across a chart and release; every chart then shows that span (finer buckets).
function onDragStart(chart, event) {
  if (!chart.series || event.button !== 0) return;
  const px = event.clientX - chart.canvas.getBoundingClientRect().left;
  chart.drag = { x0: px, x1: px };
  event.preventDefault();
}

function onDragEnd(chart) {
  const drag = chart.drag;
  chart.drag = null;
  if (!drag || !chart.timeAt) return;
  if (Math.abs(drag.x1 - drag.x0) < 6) {
    draw(chart);
    return; // a click, not a selection
  }
  const [a, b] = [chart.timeAt(Math.min(drag.x0, drag.x1)), chart.timeAt(Math.max(drag.x0, drag.x1))];
  setView({ start: Math.round(a), end: Math.round(Math.max(b, a + 30e3)) });
}

function setView(view) {
  state.view = view;
  syncQuery();
  refresh();
}

/** Pan by a fraction of the span (negative: earlier), or zoom out around the centre (factor > 1). */
function move(shift, factor = 1) {
  const { start, end } = span();
  const width = end - start;
  const centre = start + width / 2 + shift * width;
  const half = (width * factor) / 2;
  setView({ start: Math.round(centre - half), end: Math.round(centre + half) });
}

function chartFigure(metric) {
  const canvas = el("canvas", { role: "img" });
  const chart = {
    canvas, readout: el("div", { class: "readout muted" }, "\u00a0"), caption: el("figcaption", {}), hover: null,
    series: null, compare: null, drag: null,
  };
  const download = el("button", { type: "button", class: "btn small", "data-action": "csv", title: "Download what this chart shows as CSV",
    onclick: () => downloadCsv(chart) }, "CSV");
  chart.figure = el("figure", { class: "chart", "data-metric": metric }, chart.caption, canvas, el("div", { class: "chart-foot" }, chart.readout, download));
  canvas.addEventListener("mousemove", (event) => onHover(chart, event));
  canvas.addEventListener("mousedown", (event) => onDragStart(chart, event));
  canvas.addEventListener("mouseup", () => onDragEnd(chart));
  canvas.addEventListener("mouseleave", () => {
    chart.hover = null;
    if (chart.drag) onDragEnd(chart);
    else if (chart.series) draw(chart);
    if (chart.series) readout(chart);
  });
  return chart;
}

/** The rows a chart shows (both devices when compared), as a CSV file. */
function chartCsv(chart) {
  const rows = [["device_id", "metric", "unit", "region", "bucket", "bucket_start", "min", "max", "avg", "count"]];
  for (const series of [chart.series, chart.compare].filter(Boolean)) {
    for (const p of series.points) {
      rows.push([series.device_id, series.name, series.unit || "", series.region, series.bucket, p.ts, p.min, p.max, p.avg, p.count]);
    }
  }
  return csv(rows);
}

function downloadCsv(chart) {
  const s = chart.series;
  const name = `${s.device_id}${chart.compare ? `-vs-${chart.compare.device_id}` : ""}-${s.name}-${s.start.slice(0, 19).replaceAll(":", "")}.csv`;
  const text = chartCsv(chart);
  chart.figure.dataset.csvRows = String(text.trim().split("\r\n").length - 1);
  saveFile(name, text);
}

function renderChart(chart, series, compare) {
  chart.series = series;
  chart.compare = compare || null;
  chart.hover = null;
  const pts = series.points;
  const avg = pts.reduce((s, p) => s + p.avg * p.count, 0) / Math.max(1, pts.reduce((s, p) => s + p.count, 0));
  const stats = pts.length
    ? `min ${value(Math.min(...pts.map((p) => p.min)))} · avg ${value(avg)} · max ${value(Math.max(...pts.map((p) => p.max)))}`
    : "no readings in this window";
  chart.caption.replaceChildren(...[
    el("strong", {}, series.name),
    el("span", { class: "muted" }, series.unit ? `(${series.unit})` : ""),
    el("span", { class: "tag" }, series.category),
    compare ? el("span", { class: "legend-compare", title: `dashed: ${compare.device_id} (${compare.region})` },
      el("span", { class: "swatch" }), compare.device_id) : null,
    el("span", { class: "muted stats" },
      `${stats} · ${num(pts.length)} bucket${pts.length === 1 ? "" : "s"} of ${series.bucket} in ${series.region}`),
  ].filter(Boolean));
  const f = chart.figure;
  Object.assign(f.dataset, { points: pts.length, bucket: series.bucket, start: series.start, end: series.end, region: series.region });
  if (compare) Object.assign(f.dataset, { compare: compare.device_id, comparePoints: compare.points.length });
  else {
    delete f.dataset.compare;
    delete f.dataset.comparePoints;
  }
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
    ? el("span", { class: "muted", title: "restricted data your user may not read (its roles or region scope)" }, "withheld")
    : clip(value(f.value), "value");
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

async function renderCharts(device, latestHere, other) {
  // what this render shows, taken now: a click while its requests are out changes state, not this render
  const shows = `${device.device_id}|${state.view ? "zoom" : state.window}|${latestHere.region}` + (other ? `|${other.id}` : "");
  const { start: startMs, end: endMs } = span();
  const bucket = bucketFor(endMs - startMs);
  const start = new Date(startMs);
  const end = new Date(endMs);
  byId("window-note").textContent = `${stamp(start.toISOString())} – ${stamp(end.toISOString())}, buckets of ${bucket}`
    + (state.view ? " (zoomed: drag across a chart to zoom further)" : " (drag across a chart to zoom)");
  byId("zoom-buttons").dataset.zoomed = state.view ? "1" : "";
  const metrics = latestHere.fields.filter((f) => typeof f.value === "number" && !f.withheld).map((f) => f.name).sort();
  if (!metrics.length) {
    charts.clear();
    return show("charts", note(`No numeric readings of this device in ${latestHere.region}.`));
  }
  const span_ = `start=${enc(start.toISOString())}&end=${enc(end.toISOString())}&bucket=${bucket}`;
  const results = await Promise.allSettled(
    metrics.map((name) => getJSON(`/devices/${enc(device.device_id)}/series?name=${enc(name)}&${span_}&region=${enc(latestHere.region)}`)),
  );
  // the compared device: the same metrics where its profile has them, from its home region
  const shared = other ? metrics.filter((name) => other.fields.includes(name)) : [];
  const compared = await Promise.allSettled(shared.map((name) =>
    getJSON(`/devices/${enc(other.id)}/series?name=${enc(name)}&${span_}&region=${enc(other.region)}`)));
  const compareOf = Object.fromEntries(shared.map((name, i) => [name, compared[i].status === "fulfilled" ? compared[i].value : null]));
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
  metrics.forEach((name, i) => results[i].status === "fulfilled" && renderChart(charts.get(name), results[i].value, compareOf[name]));
  byId("charts").dataset.rendered = shows;
  return undefined;
}

/** The compared device: its id, home region and numeric fields; null when none is chosen or it cannot be read. */
async function comparedDevice() {
  if (!state.compare || state.compare === state.id) return null;
  try {
    const device = await getJSON(`/devices/${enc(state.compare)}`);
    const latest = await getJSON(`/devices/${enc(state.compare)}/latest?region=${enc(device.home_region)}`);
    const fields = latest.fields.filter((f) => typeof f.value === "number" && !f.withheld).map((f) => f.name);
    return { id: device.device_id, region: device.home_region, fields };
  } catch (err) {
    byId("compare-note").textContent = `cannot compare with ${state.compare}: ${err.detail || err.message}`;
    return null;
  }
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
  let stop = false;
  try {
    const id = enc(state.id);
    let device;
    try {
      device = await getJSON(`/devices/${id}`);
    } catch (err) {
      byId("status-chip").textContent = err.status === 404 ? "unknown device" : "device unavailable";
      show("device-info", el("div", { class: "panel wide" }, fail(err)));
      for (const target of ["charts", "latest", "gaps"]) show(target, note("No device to show."));
      stop = true;
      return;
    }
    byId("region-select").parentElement.hidden = false;
    byId("device-info").classList.remove("picker");
    byId("compare-note").textContent = "";
    const sites = await getJSON("/sites");
    const site = sites.find((s) => s.site_id === device.site);
    const regions = site ? site.candidate_regions : [device.home_region];
    const select = byId("region-select");
    if (!regions.includes(state.region)) state.region = device.home_region;
    select.replaceChildren(...regions.map((r) =>
      el("option", { value: r, selected: r === state.region }, r === device.home_region ? `${r} (home)` : r)));
    const [latests, gaps, other] = await Promise.allSettled([
      Promise.all(regions.map((r) => getJSON(`/devices/${id}/latest?region=${enc(r)}`))),
      getJSON(`/gaps?device_id=${id}&state=all`),
      comparedDevice(),
    ]);
    renderInfo(device, gaps.status === "fulfilled" ? gaps.value : null);
    if (gaps.status === "fulfilled") renderGaps(gaps.value);
    else show("gaps", fail(gaps.reason));
    if (latests.status === "rejected") {
      show("latest", fail(latests.reason));
      show("charts", fail(latests.reason));
      stop = latests.reason && (latests.reason.status === 403 || latests.reason.status === 401); // not asked again
    } else {
      renderLatest(latests.value);
      await renderCharts(device, latests.value[regions.indexOf(state.region)], other.status === "fulfilled" ? other.value : null);
    }
    byId("updated-chip").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } finally {
    state.busy = false;
    if (state.again) refresh();
    else if (!stop && !state.view && byId("auto-refresh").checked) state.timer = setTimeout(refresh, REFRESH_MS);
  }
}

function syncQuery() {
  const view = state.view ? `${new Date(state.view.start).toISOString()}/${new Date(state.view.end).toISOString()}` : null;
  setQuery({ id: state.id || null, window: state.window === "1h" ? null : state.window, region: state.region || null,
    compare: state.compare || null, view });
  for (const b of byId("window-buttons").children) {
    b.setAttribute("aria-pressed", String(!state.view && b.dataset.window === state.window));
  }
  byId("zoom-reset").disabled = !state.view;
}

function viewFromQuery() {
  const [a, b] = (query("view") || "").split("/").map((t) => Date.parse(t));
  return Number.isFinite(a) && Number.isFinite(b) && a < b ? { start: a, end: b } : null;
}

async function start() {
  const me = await ready;
  if (!me) return; // not signed in: the sign-in form, nothing polled
  state.view = viewFromQuery();
  show("window-buttons", ...Object.keys(WINDOWS).map((w) =>
    el("button", { type: "button", class: "btn", "data-window": w, onclick: () => {
      state.window = w;
      state.view = null;
      syncQuery();
      refresh();
    } }, w)));
  byId("zoom-earlier").addEventListener("click", () => move(-0.5));
  byId("zoom-later").addEventListener("click", () => move(0.5));
  byId("zoom-out").addEventListener("click", () => move(0, 2));
  byId("zoom-reset").addEventListener("click", () => setView(null));
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
  byId("compare-select").addEventListener("change", (event) => {
    state.compare = event.target.value;
    syncQuery();
    refresh();
  });
  byId("refresh-btn").addEventListener("click", refresh);
  byId("auto-refresh").addEventListener("change", (event) => (event.target.checked ? refresh() : clearTimeout(state.timer)));
  window.addEventListener("resize", () => charts.forEach((c) => c.series && draw(c)));
  window.addEventListener("mouseup", () => charts.forEach((c) => c.drag && onDragEnd(c)));
  syncQuery();
  try {
    const devices = await getJSON("/devices?limit=1000");
    byId("device-select").append(...devices.items.map((d) =>
      el("option", { value: d.device_id, selected: d.device_id === state.id }, `${d.device_id} (${d.site}, ${d.status})`)));
    byId("compare-select").append(...devices.items.map((d) =>
      el("option", { value: d.device_id, selected: d.device_id === state.compare }, d.device_id)));
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

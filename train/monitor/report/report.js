// The expert-load report's script (`mlamoe experts --html`): everything is drawn from the JSON the
// page embeds (id "report-data", built by html_report.cpp). Each section is independent, so one
// that fails (a field shaped differently by a newer trainer) leaves the others, and the failure is
// shown. Embedded into the binary at build time (train/monitor/embed_assets.cmake).
"use strict";
const D = JSON.parse(document.getElementById("report-data").textContent);
const errors = [];
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
const fin = (v) => typeof v === "number" && isFinite(v);
function fmt(v, digits) {
  if (!fin(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(digits === undefined ? 2 : digits - 1);
  return String(Number(v.toPrecision(digits === undefined ? 4 : digits)));
}
function section(name, f) { try { f(); } catch (e) { errors.push(name + ": " + e); } }
function add(parent, tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  parent.appendChild(e);
  return e;
}
const PAGE_W = Math.max(600, Math.min(1340, document.body.clientWidth || 1200));
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
const layerColor = (i, n) => n <= PALETTE.length ? PALETTE[i] : `hsl(${Math.round(i * 330 / n)},65%,42%)`;

// Diverging colour of log2(load / mean): blue below the mean, white at it, red above; ±2 saturates.
function heatRGB(l2) {
  const t = Math.max(-1, Math.min(1, l2 / 2)), a = Math.abs(t);
  const to = t < 0 ? [33, 102, 172] : [178, 24, 43];
  return to.map((c) => Math.round(255 - a * (255 - c)));
}
const DEAD_RGB = [0, 0, 0], NODATA_RGB = [225, 225, 225];
const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;
const loadRGB = (r) => r === null || r === undefined ? NODATA_RGB : r <= 0 ? DEAD_RGB : heatRGB(Math.log2(r));

function makeCanvas(parent, w, h) {
  const c = document.createElement("canvas"), r = window.devicePixelRatio || 1;
  c.width = Math.round(w * r), c.height = Math.round(h * r);
  c.style.width = w + "px", c.style.height = h + "px";
  parent.appendChild(c);
  const g = c.getContext("2d");
  g.scale(r, r);
  g.font = "11px system-ui, sans-serif";
  return g;
}
function niceTicks(lo, hi, n) {
  if (!(hi > lo)) { hi = lo + (Math.abs(lo) || 1) * 0.1; lo -= (Math.abs(lo) || 1) * 0.1; }
  const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
  const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag, ticks = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]), ticks };
}
function labelX(g, text, x, w, y) {  // centred under its tick, but kept inside the canvas
  const half = g.measureText(text).width / 2;
  g.fillText(text, Math.min(Math.max(x, half), w - half - 1), y);
}
// x: [n] numbers; series: [{name, y: [n] (null = gap), color, width, dash, dots}]; opts: {w, h, title, logY}
function lineChart(parent, x, series, opts) {
  const box = add(parent, "div");
  if (opts.title) add(box, "div", opts.title, "chart-title");
  const w = opts.w || PAGE_W, h = opts.h || 240, m = { l: 62, r: 12, t: 8, b: 26 };
  const g = makeCanvas(box, w, h);
  const tr = (v) => opts.logY ? Math.log10(v) : v;
  let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
  for (const s of series)
    s.y.forEach((v, i) => {
      if (!fin(v) || !fin(x[i]) || (opts.logY && v <= 0)) return;
      xlo = Math.min(xlo, x[i]), xhi = Math.max(xhi, x[i]), ylo = Math.min(ylo, tr(v)), yhi = Math.max(yhi, tr(v));
    });
  if (!fin(xlo)) { g.fillStyle = "#888"; g.fillText("no data", m.l + 10, h / 2); return box; }
  if (xhi === xlo) xhi = xlo + 1;
  if (opts.zero && !opts.logY) ylo = Math.min(ylo, 0);
  const yt = opts.logY ? { lo: Math.floor(ylo), hi: Math.max(Math.ceil(yhi), Math.floor(ylo) + 1), ticks: [] }
                        : niceTicks(ylo, yhi, 5);
  const small = Math.max(...yt.ticks.map(Math.abs)) < 0.01;  // lr ticks: 1e-4 .. 3e-3 all in one notation
  if (opts.logY) for (let p = yt.lo; p <= yt.hi; ++p) yt.ticks.push(p);
  const X = (v) => m.l + (v - xlo) / (xhi - xlo) * (w - m.l - m.r);
  const Y = (v) => h - m.b - (tr(v) - yt.lo) / (yt.hi - yt.lo) * (h - m.t - m.b);
  const Yt = (t) => h - m.b - (t - yt.lo) / (yt.hi - yt.lo) * (h - m.t - m.b);
  g.strokeStyle = "#e6e6e6", g.fillStyle = "#555", g.lineWidth = 1, g.textAlign = "right", g.textBaseline = "middle";
  for (const t of yt.ticks) {
    g.beginPath(), g.moveTo(m.l, Yt(t)), g.lineTo(w - m.r, Yt(t)), g.stroke();
    g.fillText(opts.logY ? fmt(Math.pow(10, t), 2) : small && t !== 0 ? t.toExponential(1) : fmt(t, 3), m.l - 5, Yt(t));
  }
  g.textAlign = "center", g.textBaseline = "top";
  for (const t of niceTicks(xlo, xhi, Math.max(2, Math.floor(w / 110))).ticks)
    if (t >= xlo && t <= xhi) labelX(g, fmt(t, 6), X(t), w, h - m.b + 5);
  g.strokeStyle = "#999", g.strokeRect(m.l, m.t, w - m.l - m.r, h - m.t - m.b);
  for (const s of series) {
    g.strokeStyle = s.color, g.fillStyle = s.color, g.lineWidth = s.width || 1.5, g.setLineDash(s.dash || []);
    g.beginPath();
    let pen = false;
    s.y.forEach((v, i) => {
      if (!fin(v) || (opts.logY && v <= 0)) { if (!s.connect) pen = false; return; }
      if (s.dots) { g.fillRect(X(x[i]) - 2, Y(v) - 2, 4, 4); return; }
      pen ? g.lineTo(X(x[i]), Y(v)) : g.moveTo(X(x[i]), Y(v));
      pen = true;
    });
    g.stroke();
  }
  g.setLineDash([]);
  const named = series.filter((s) => s.name);
  if (named.length) {
    const lg = add(box, "div", undefined, "legend");
    for (const s of named) lg.innerHTML += `<span><i style="background:${s.color}"></i>${esc(s.name)}</span>`;
  }
  return box;
}

section("header", () => {
  $("title").textContent = "Expert load: " + D.run;
  $("subtitle").textContent = (D.summary ? D.summary + " — " : "") + D.run_dir;
  $("steps").textContent = `${D.steps_seen} steps logged (steps ${D.first_step}..${D.last_step}); ` +
    `window: the last ${D.window.steps} steps (${D.window.first_step}..${D.window.last_step}).`;
  if (D.notes.length) {
    const n = add($("notes"), "div", undefined, "notes");
    n.innerHTML = "<b>Skipped or missing</b><ul>" + D.notes.map((s) => `<li>${esc(s)}</li>`).join("") + "</ul>";
  }
});

section("window heatmap", () => {
  $("window-note").textContent = `Colour: tokens routed to the expert over steps ${D.window.first_step}..${D.window.last_step} ` +
    "divided by the layer's mean per expert; black: no token in the window (dead). One row per MoE layer.";
  const maxE = Math.max(1, ...D.layers.map((L) => L.experts));
  const labelW = 8 + 7 * Math.max(8, ...D.layers.map((L) => L.name.length));
  const cell = Math.max(3, Math.min(30, Math.floor((PAGE_W - labelW - 20) / maxE)));
  const rowH = Math.max(10, Math.min(24, cell)), top = 16;
  let s = `<svg width="${labelW + maxE * cell + 10}" height="${top + D.layers.length * rowH + 4}" role="img">`;
  for (let e = 0; e < maxE; e += Math.max(1, Math.ceil(maxE / 16)))
    s += `<text x="${labelW + e * cell + cell / 2}" y="11" text-anchor="middle">${e}</text>`;
  D.layers.forEach((L, i) => {
    const v = L.window_load || [];
    s += `<g class="heatmap-row" data-layer="${esc(L.name)}" data-values="${esc(JSON.stringify(L.window_load || null))}"` +
      ` transform="translate(0,${top + i * rowH})">`;
    s += `<text x="${labelW - 6}" y="${rowH / 2 + 4}" text-anchor="end">${esc(L.name)}</text>`;
    for (let e = 0; e < L.experts; ++e) {
      const r = v[e] === undefined ? null : v[e], tok = L.window_counts ? L.window_counts[e] : null;
      s += `<rect x="${labelW + e * cell}" y="0" width="${cell - (cell > 4 ? 1 : 0)}" height="${rowH - 1}"` +
        ` fill="${rgb(loadRGB(r))}" stroke="#d0d0d0" stroke-width="0.5"` +
        ` data-expert="${e}" data-load="${r === null ? "" : r}"><title>${esc(L.name)} expert ${e}: ${fmt(r, 3)}× mean` +
        `${tok === null ? "" : ` (${tok} tokens)`}</title></rect>`;
    }
    s += "</g>";
  });
  $("window-heatmap").innerHTML = s + "</svg>";
  const lg = makeCanvas($("heat-legend"), 420, 34), stops = [-2, -1, 0, 1, 2];
  for (let x = 0; x < 300; ++x) { lg.fillStyle = rgb(heatRGB(-2 + 4 * x / 299)); lg.fillRect(60 + x, 2, 1, 12); }
  lg.fillStyle = rgb(DEAD_RGB), lg.fillRect(0, 2, 12, 12), lg.fillStyle = rgb(NODATA_RGB), lg.fillRect(376, 2, 12, 12);
  lg.fillStyle = "#333", lg.textBaseline = "top", lg.textAlign = "left";
  lg.fillText("0", 16, 3), lg.fillText("none", 392, 3), lg.textAlign = "center";
  for (const p of stops) lg.fillText(["¼", "½", "1", "2", "4"][p + 2] + "×", 60 + (p + 2) / 4 * 299, 18);
});

section("last-step table", () => {
  const t = $("last-step");
  t.innerHTML = "<tr><th>layer</th><th>MaxVio</th><th>dead</th><th>entropy (nats)</th><th>entropy / max</th><th>CV</th>" +
    "<th>bias min</th><th>bias max</th><th>balance loss</th><th>EP max/mean</th><th>tokens</th></tr>";
  for (const L of D.layers) {
    const s = L.last || {}, tr = add(t, "tr");
    tr.dataset.layer = L.name;
    for (const [k, v] of [["maxvio", s.maxvio], ["dead", s.dead], ["entropy", s.entropy], ["cv", s.cv], ["biasMin", s.bias_min],
                          ["biasMax", s.bias_max], ["epMaxOverMean", s.ep_max_over_mean]])
      if (fin(v)) tr.dataset[k] = String(v);
    const ratio = fin(s.entropy) && fin(s.entropy_max) && s.entropy_max > 0 ? s.entropy / s.entropy_max : null;
    const cells = [L.name, fmt(s.maxvio), fin(s.dead) ? String(s.dead) : "–", fmt(s.entropy), fmt(ratio, 3), fmt(s.cv),
                   fmt(s.bias_min, 3), fmt(s.bias_max, 3), fmt(s.balance_loss, 3), fmt(s.ep_max_over_mean),
                   fin(s.tokens) ? String(s.tokens) : "–"];
    for (const c of cells) add(tr, "td", c);
    if (fin(s.dead)) tr.children[2].title = "source: " + s.dead_source;
  }
  add(t.parentNode, "p", `Step ${D.last_step}. dead: from the log when it has the figure ` +
    "(no token for the trainer's dead_window steps), " +
    "else experts without a token in this step.", "sub");
});

section("maxvio", () => {
  const x = D.col_last_step;
  lineChart($("maxvio"), x, D.layers.map((L, i) => ({ name: L.name, y: L.maxvio, color: layerColor(i, D.layers.length) })),
            { h: 260, zero: true, title: D.column_width > 1 ? `mean over each column of ${D.column_width} steps` : "" });
});

section("step heatmaps", () => {
  $("downsample-note").textContent = D.column_width > 1
    ? `Downsampled: ${D.steps_seen} steps in ${D.columns} columns; each column is the mean of ${D.column_width} steps ` +
      "(at most ~1000 columns are drawn). x: step, y: expert, colour: load / mean load of the layer (legend above)."
    : `Full resolution: one column per step (${D.columns} steps). ` +
      "x: step, y: expert, colour: load / mean load of the layer in that step (legend above).";
  const host = $("step-heatmaps"), C = D.columns, x0 = D.col_last_step;
  for (const L of D.layers) {
    const E = L.experts, box = add(host, "div", undefined, "step-heatmap");
    box.dataset.layer = L.name;
    add(box, "div", `${L.name} — ${E} experts`, "chart-title");
    if (!E || !C) { add(box, "p", "no per-expert counts logged for this layer", "sub"); continue; }
    const bytes = Uint8Array.from(atob(L.heat), (c) => c.charCodeAt(0));
    const off = document.createElement("canvas");
    off.width = C, off.height = E;
    const og = off.getContext("2d"), img = og.createImageData(C, E);
    for (let e = 0; e < E; ++e)
      for (let c = 0; c < C; ++c) {
        const b = bytes[e * C + c], col = b === 0 ? NODATA_RGB : b === 1 ? DEAD_RGB : heatRGB((b - 2) / 253 * 6 - 3);
        img.data.set([col[0], col[1], col[2], 255], 4 * (e * C + c));
      }
    og.putImageData(img, 0, 0);
    const rowH = Math.max(1, Math.min(8, Math.floor(256 / E))), m = { l: 62, r: 12, t: 4, b: 22 };
    const w = PAGE_W, h = E * rowH + m.t + m.b, g = makeCanvas(box, w, h);
    g.imageSmoothingEnabled = false;
    g.drawImage(off, m.l, m.t, w - m.l - m.r, E * rowH);
    g.fillStyle = "#555", g.textAlign = "right", g.textBaseline = "middle";
    g.fillText("expert 0", m.l - 4, m.t + rowH / 2), g.fillText(String(E - 1), m.l - 4, m.t + E * rowH - rowH / 2);
    g.textAlign = "center", g.textBaseline = "top";
    const span = Math.max(1, x0[C - 1] - D.col_first_step[0]);
    for (const t of niceTicks(D.col_first_step[0], x0[C - 1], Math.floor(w / 110)).ticks)
      if (t >= D.col_first_step[0] && t <= x0[C - 1])
        labelX(g, fmt(t, 6), m.l + (t - D.col_first_step[0]) / span * (w - m.l - m.r), w, h - m.b + 5);
  }
});

section("bias", () => {
  const host = $("bias"), x = D.col_last_step, w = Math.floor((PAGE_W - 24) / 2);
  let drawn = 0;
  for (const L of D.layers) {
    if (!L.bias_min.some(fin)) continue;
    const series = (L.bias || []).map((y) => ({ y, color: "rgba(31,119,180,0.25)", width: 0.8 }));
    series.push({ name: "min", y: L.bias_min, color: "#2166ac", width: 2 },
                { name: "max", y: L.bias_max, color: "#b2182b", width: 2 },
                { name: "mean", y: L.bias_mean, color: "#333", width: 1.2, dash: [4, 3] });
    lineChart(host, x, series, { w, h: 200, title: L.name });
    ++drawn;
  }
  if (!drawn) add(host, "p", "No correction bias in the log (aux-loss routing, or an older log).", "sub");
});

section("ep", () => {
  const host = $("ep"), with_ep = D.layers.filter((L) => L.ep_ratio);
  if (!with_ep.length) { add(host, "p", "No EP-rank load in experts.jsonl (an older log without ep_load).", "sub"); return; }
  add(host, "p", "Tokens of the busiest expert-parallel rank divided by the mean over ranks " +
      "(1 = balanced; the step waits for the busiest).", "sub");
  const series = with_ep.map((L, i) => ({ name: L.name, y: L.ep_ratio, color: layerColor(i, with_ep.length) }));
  lineChart(host, D.col_last_step, series, { h: 220 });
  const t = add(host, "table"), R = Math.max(0, ...D.layers.map((L) => (L.window_ep_load || []).length));
  if (!R) return;
  t.innerHTML = "<tr><th>layer: mean tokens per step in the window, on EP rank</th>" +
    Array.from({ length: R }, (_, r) => `<th>${r}</th>`).join("") + "</tr>";
  for (const L of D.layers) {
    if (!L.window_ep_load) continue;
    const tr = add(t, "tr");
    tr.dataset.layer = L.name;
    add(tr, "td", L.name);
    for (const v of L.window_ep_load) add(tr, "td", fmt(v, 5));
  }
});

section("training", () => {
  const M = D.metrics, F = M.fields, host = $("training"), w = Math.floor((PAGE_W - 24) / 2);
  if (!M.step.length) { add(host, "p", "No metrics.jsonl lines.", "sub"); return; }
  const pick = (names) => names.filter((n) => F[n] && F[n].some(fin));
  const colors = { loss: "#222", lm_loss: "#1f77b4", mtp_loss: "#ff7f0e", eval_lm_loss: "#d62728" };
  const charts = [
    ["loss (log scale)", pick(["loss", "lm_loss", "mtp_loss", "eval_lm_loss"]), true],
    ["learning rate", pick(["lr"]), false], ["tokens / s", pick(["tokens_per_s"]), false],
    ["gradient norm (before clipping)", pick(["grad_norm"]), true]];
  for (const [title, names, logY] of charts) {
    if (!names.length) continue;
    const eval_only = (n) => n === "eval_lm_loss";  // a point every eval_every steps
    const series = names.map((n) => ({ name: n, y: F[n], color: colors[n] || "#1f77b4", dots: eval_only(n),
                                       connect: eval_only(n) }));
    lineChart(host, M.step, series, { w, h: 220, title, logY });
  }
  if (M.column_width > 1) add(host, "p", `Each point is the mean of ${M.column_width} steps.`, "sub");
});

$("errors").textContent = errors.length ? "Some sections could not be drawn: " + errors.join("; ") : "";
document.body.dataset.rendered = errors.length ? "errors" : "ok";

// capas playground: the page. Settings live in the URL; the server trains and streams frames.
"use strict";

const $ = (id) => document.getElementById(id);
const CLASS_COLORS = [[245, 147, 34], [8, 119, 189], [46, 160, 67], [148, 103, 189], [214, 39, 40],
  [140, 86, 75], [227, 119, 194], [127, 127, 127]];
const FEATURE_LABELS = { x1: "x1", x2: "x2", x1sq: "x1²", x2sq: "x2²", x1x2: "x1·x2", sinx1: "sin x1", sinx2: "sin x2" };
const FEATURE_FN = { x1: (a) => a, x2: (a, b) => b, x1sq: (a) => a * a, x2sq: (a, b) => b * b,
  x1x2: (a, b) => a * b, sinx1: (a) => Math.sin(a), sinx2: (a, b) => Math.sin(b) };
const LIST_KEYS = ["features", "hidden"];

const state = { settings: null, defaults: null, options: null, socket: null, events: null, session: null, structure: null,
  data: null, frame: null, losses: [], epoch: 0, running: false, frames: 0, limits: null };
window.playgroundState = state; // read by the browser tests

// ---- colours ---------------------------------------------------------------------------
function diverging(t) { // t in [-1, 1]: orange (negative) - white - blue (positive)
  const c = t < 0 ? CLASS_COLORS[0] : CLASS_COLORS[1];
  const a = Math.min(1, Math.abs(t));
  return [255 + (c[0] - 255) * a, 255 + (c[1] - 255) * a, 255 + (c[2] - 255) * a];
}
function decode(b64) {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
function pixelsToCanvas(grid, colorAt) {
  const img = document.createElement("canvas");
  img.width = grid; img.height = grid;
  const ctx = img.getContext("2d");
  const data = ctx.createImageData(grid, grid);
  for (let i = 0; i < grid * grid; i++) {
    const c = colorAt(i);
    data.data[4 * i] = c[0]; data.data[4 * i + 1] = c[1]; data.data[4 * i + 2] = c[2]; data.data[4 * i + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  return img;
}
function unitImage(grid, b64) { const v = decode(b64); return pixelsToCanvas(grid, (i) => diverging(v[i] / 127.5 - 1)); }
function labelColor(y) {
  const d = state.data;
  if (d.classes) return CLASS_COLORS[y % CLASS_COLORS.length];
  const [lo, hi] = d.target_range;
  return diverging(2 * (y - lo) / (hi - lo) - 1);
}

// ---- settings and the URL ------------------------------------------------------------------
function readUrl(defaults) {
  const settings = JSON.parse(JSON.stringify(defaults));
  const params = new URLSearchParams(location.search);
  for (const [key, value] of params) {
    if (!(key in defaults)) continue;
    if (LIST_KEYS.includes(key)) {
      const parts = value === "" ? [] : value.split(",");
      settings[key] = key === "hidden" ? parts.map(Number) : parts;
    } else if (typeof defaults[key] === "number") settings[key] = Number(value);
    else settings[key] = value;
  }
  return settings;
}
function writeUrl() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state.settings)) {
    params.set(key, Array.isArray(value) ? value.join(",") : String(value));
  }
  history.replaceState(null, "", "?" + params.toString());
}
let pending = null;
function changed(patch, delay = 0) {
  Object.assign(state.settings, patch);
  writeUrl();
  showSettings();
  clearTimeout(pending);
  pending = setTimeout(() => send({ type: "settings", settings: state.settings }), delay);
}

// ---- the socket --------------------------------------------------------------------------
// The websocket, or (a server without a websocket library) server-sent events plus posts.
function send(message) {
  if (state.socket && state.socket.readyState === 1) state.socket.send(JSON.stringify(message));
  else if (state.events && state.session) {
    fetch(`/api/sessions/${state.session}/messages`, { method: "POST", body: JSON.stringify(message),
      headers: { "Content-Type": "application/json" } });
  }
}
function connect() {
  const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  let opened = false;
  state.socket = socket;
  socket.onopen = () => { opened = true; send({ type: "settings", settings: state.settings }); };
  socket.onmessage = (event) => receive(JSON.parse(event.data));
  socket.onclose = () => {
    if (!opened) { state.socket = null; connectEvents(); return; }
    showMessage("the connection to the server closed; reload the page to start again", "error");
  };
}
async function connectEvents() {
  const opened = await (await fetch("/api/sessions", { method: "POST" })).json();
  state.session = opened.session;
  const events = new EventSource(`/api/sessions/${opened.session}/events`);
  state.events = events;
  let first = true;
  events.onmessage = (event) => {
    receive(JSON.parse(event.data));
    if (first) { first = false; send({ type: "settings", settings: state.settings }); }
  };
  events.onerror = () => { if (events.readyState === 2) showMessage("the connection to the server closed; reload the page", "error"); };
}
function receive(m) {
  if (m.type === "hello") { state.session = m.session; state.limits = m.limits; }
  else if (m.type === "state") onState(m);
  else if (m.type === "frame") onFrame(m);
  else if (m.type === "status") { state.running = m.running; showRunning(); }
  else if (m.type === "error" || m.type === "limit") showMessage(m.message, m.type);
  else if (m.type === "export") {
    $("command").textContent = m.command;
    const link = $("download");
    link.href = m.url; link.hidden = false; link.setAttribute("download", "");
  }
}
function showMessage(text, kind) {
  const box = $("message");
  box.textContent = (kind === "limit" ? "Limit: " : "Error: ") + text;
  box.className = kind; box.hidden = false;
}

// ---- state: a new network --------------------------------------------------------------------
function onState(m) {
  $("message").hidden = true;
  state.settings = m.settings; state.structure = m.layers; state.data = m.data; state.grid = m.grid;
  state.losses = []; state.epoch = 0; state.task = m.task;
  writeUrl(); showSettings();
  $("network-info").textContent = `spec ${m.canonical}: ${m.parameters} parameters, engine ${m.engine}, ${m.task}`;
  $("upload-name").textContent = m.upload ? `uploaded: ${m.upload}` : "";
  const select = $("layer");
  select.innerHTML = "";
  for (const name of m.hidden_layers) select.add(new Option(name, name));
  select.value = m.hidden_layers[Math.max(0, m.hidden_layers.length - 2)];
  $("command").textContent = ""; $("download").hidden = true;
}

function onFrame(f) {
  state.frame = f; state.epoch = f.epoch; state.running = f.running; state.frames += 1;
  for (const point of f.losses) state.losses.push(point);
  if (state.losses.length > 4000) state.losses = state.losses.filter((_, i) => i % 2 === 0);
  $("epoch").textContent = String(f.epoch).padStart(6, "0");
  const last = state.losses[state.losses.length - 1];
  $("train-loss").textContent = last && last[1] != null ? last[1].toFixed(3) : "-";
  $("test-loss").textContent = last && last[2] != null ? last[2].toFixed(3) : "-";
  $("accuracy").textContent = f.accuracy && f.accuracy[1] != null ? ` test accuracy ${(100 * f.accuracy[1]).toFixed(1)}%` : "";
  const warning = $("warning");
  warning.hidden = !f.warning; warning.textContent = f.warning ? "Warning: " + f.warning : "";
  if (f.hidden) $("layer").value = f.hidden.layer;
  showRunning(); drawNetwork(); drawHeatmap(); drawCurve(); drawGradients(); drawHidden();
}
function showRunning() { $("play").innerHTML = state.running ? "&#x23f8;" : "&#x25b6;"; }

// ---- drawing ----------------------------------------------------------------------------------
function drawHeatmap() {
  const f = state.frame, d = state.data, canvas = $("heatmap"), ctx = canvas.getContext("2d");
  const grid = state.grid, out = f.output;
  let img;
  if (out.kind === "classes") {
    const cls = decode(out.class), conf = decode(out.confidence);
    img = pixelsToCanvas(grid, (i) => {
      const c = CLASS_COLORS[cls[i] % CLASS_COLORS.length], a = 0.15 + 0.6 * conf[i] / 255;
      return [255 + (c[0] - 255) * a, 255 + (c[1] - 255) * a, 255 + (c[2] - 255) * a];
    });
  } else {
    const v = decode(out.value);
    img = pixelsToCanvas(grid, (i) => diverging(0.8 * (v[i] / 127.5 - 1)));
  }
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  const [x0, x1, y0, y1] = d.bounds;
  const px = (p) => [(p[0] - x0) / (x1 - x0) * canvas.width, (y1 - p[1]) / (y1 - y0) * canvas.height];
  const dot = (p, y, stroke) => {
    const [u, v] = px(p);
    ctx.beginPath(); ctx.arc(u, v, 3, 0, 2 * Math.PI);
    const c = labelColor(y);
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`; ctx.fill();
    ctx.strokeStyle = stroke; ctx.lineWidth = 1; ctx.stroke();
  };
  d.train.forEach((p, i) => dot(p, d.train_y[i], "#fff"));
  if ($("show-test").checked) d.test.forEach((p, i) => dot(p, d.test_y[i], "#000"));
}

function featureImage(name, grid) {
  const [x0, x1, y0, y1] = state.data.bounds, values = new Float64Array(grid * grid);
  let scale = 1e-12;
  for (let r = 0; r < grid; r++) for (let c = 0; c < grid; c++) {
    const a = x0 + (x1 - x0) * c / (grid - 1), b = y1 - (y1 - y0) * r / (grid - 1);
    const v = FEATURE_FN[name](a, b);
    values[r * grid + c] = v; scale = Math.max(scale, Math.abs(v));
  }
  return pixelsToCanvas(grid, (i) => diverging(values[i] / scale));
}

function drawNetwork() {
  const canvas = $("network"), ctx = canvas.getContext("2d"), f = state.frame, cols = state.structure;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const colX = (i) => 30 + i * (canvas.width - 70) / Math.max(1, cols.length - 1);
  const positions = cols.map((col, i) => {
    const shown = Math.min(col.units, 16), size = Math.max(8, Math.min(30, (canvas.height - 20) / shown - 6));
    const gap = (canvas.height - shown * size) / (shown + 1);
    return Array.from({ length: shown }, (_, u) => [colX(i), gap + u * (size + gap) + size / 2, size]);
  });
  for (let i = 1; i < cols.length; i++) { // weights: blue positive, orange negative, thick by size
    const w = f.weights[cols[i].name];
    if (!w || w[0].length !== cols[i - 1].units) continue;
    let top = 1e-12;
    for (const row of w) for (const v of row) top = Math.max(top, Math.abs(v));
    positions[i].forEach(([x, y, s], u) => positions[i - 1].forEach(([px, py, ps], j) => {
      const v = w[u][j], c = v >= 0 ? CLASS_COLORS[1] : CLASS_COLORS[0];
      ctx.strokeStyle = `rgba(${c[0]},${c[1]},${c[2]},0.8)`;
      ctx.lineWidth = 0.3 + 4 * Math.abs(v) / top;
      ctx.beginPath(); ctx.moveTo(px + ps / 2, py); ctx.lineTo(x - s / 2, y); ctx.stroke();
    }));
  }
  ctx.imageSmoothingEnabled = true;
  cols.forEach((col, i) => positions[i].forEach(([x, y, s], u) => {
    let img = null;
    if (col.kind === "input") img = featureImage(col.labels[u], 20);
    else if (f.units[col.name] && f.units[col.name][u]) img = unitImage(state.grid, f.units[col.name][u]);
    if (img) ctx.drawImage(img, x - s / 2, y - s / 2, s, s);
    ctx.strokeStyle = "#666"; ctx.lineWidth = 1; ctx.strokeRect(x - s / 2, y - s / 2, s, s);
  }));
  ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.textAlign = "center";
  cols.forEach((col, i) => ctx.fillText(col.kind === "input" ? "inputs" : `${col.name} (${col.units})`, colX(i), 10));
}

function drawCurve() {
  const canvas = $("curve"), ctx = canvas.getContext("2d"), pts = state.losses;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (pts.length < 1) return;
  let top = 1e-9;
  for (const p of pts) for (const v of [p[1], p[2]]) if (v != null && isFinite(v)) top = Math.max(top, v);
  const first = pts[0][0], last = Math.max(first + 1, pts[pts.length - 1][0]);
  for (const [k, color] of [[2, "#000"], [1, "#999"]]) {
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    pts.forEach((p, i) => {
      if (p[k] == null) return;
      const x = (p[0] - first) / (last - first) * (canvas.width - 4) + 2, y = canvas.height - 2 - p[k] / top * (canvas.height - 4);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function drawGradients() {
  const canvas = $("gradients"), ctx = canvas.getContext("2d"), g = state.frame.gradients;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const names = Object.keys(g);
  const rowH = Math.min(22, (canvas.height - 4) / Math.max(1, names.length));
  ctx.font = "11px sans-serif"; ctx.textBaseline = "middle";
  names.forEach((name, i) => { // log scale: 1e-8 .. 1e2
    const v = g[name], t = isFinite(v) && v > 0 ? Math.max(0, Math.min(1, (Math.log10(v) + 8) / 10)) : 0;
    const y = 2 + i * rowH;
    ctx.fillStyle = "#2e7fb8"; ctx.fillRect(80, y + 2, t * (canvas.width - 180), rowH - 4);
    ctx.fillStyle = "#333"; ctx.fillText(name, 2, y + rowH / 2);
    ctx.fillText(v.toExponential(2), 84 + t * (canvas.width - 180), y + rowH / 2);
  });
}

function drawHidden() {
  const canvas = $("hidden"), ctx = canvas.getContext("2d"), h = state.frame.hidden;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!h) return;
  $("hidden-how").textContent = h.how;
  let [ax, bx, ay, by] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of h.points) { ax = Math.min(ax, x); bx = Math.max(bx, x); ay = Math.min(ay, y); by = Math.max(by, y); }
  const sx = (bx - ax) || 1, sy = (by - ay) || 1;
  h.points.forEach(([x, y], i) => {
    const c = labelColor(state.data.train_y[i]);
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.fillRect(6 + (x - ax) / sx * (canvas.width - 12) - 2, canvas.height - 6 - (y - ay) / sy * (canvas.height - 12) - 2, 4, 4);
  });
}

// ---- controls ----------------------------------------------------------------------------------
function fillSelect(id, values, labels) {
  const select = $(id);
  select.innerHTML = "";
  for (const v of values) select.add(new Option(labels ? labels[v] || v : v, v));
}
function showSettings() {
  const s = state.settings;
  for (const key of ["problem", "activation", "optimizer", "variant", "engine", "regularization", "lr", "reg_rate", "seed", "n", "batch_size", "classes"]) {
    if (document.activeElement !== $(key)) $(key).value = s[key];
  }
  $("loss").value = s.loss;
  $("ratio").value = Math.round(s.ratio * 100); $("ratio-value").textContent = `${Math.round(s.ratio * 100)}%`;
  $("noise").value = Math.round(s.noise * 100); $("noise-value").textContent = String(Math.round(s.noise * 100));
  if (document.activeElement !== $("spec")) $("spec").value = s.spec;
  $("layer-count").textContent = `${s.hidden.length} hidden layer${s.hidden.length === 1 ? "" : "s"}`;
  const units = $("unit-buttons");
  units.innerHTML = "";
  s.hidden.forEach((count, i) => {
    const box = document.createElement("div");
    const plus = document.createElement("button"), minus = document.createElement("button");
    plus.textContent = "+"; minus.textContent = "−";
    plus.className = "add-unit"; minus.className = "remove-unit";
    plus.onclick = () => units_(i, +1); minus.onclick = () => units_(i, -1);
    box.append(plus, minus, document.createTextNode(`${count} units`));
    units.append(box);
  });
  for (const box of document.querySelectorAll("#features input")) box.checked = s.features.includes(box.value);
}
function units_(layer, delta) {
  const hidden = state.settings.hidden.slice();
  const next = hidden[layer] + delta, max = state.limits ? state.limits.max_units : 64;
  if (next > max) return showMessage(`a hidden layer has at most ${max} units in a playground session`, "limit");
  if (next < 1) return;
  hidden[layer] = next;
  changed({ hidden });
}
function bind() {
  $("play").onclick = () => send({ type: state.running ? "pause" : "play" });
  $("step").onclick = () => send({ type: "step" });
  $("reset").onclick = () => send({ type: "reset" });
  const numbers = { lr: 0, reg_rate: 0, seed: 0, n: 0, batch_size: 0, classes: 0 };
  for (const key of Object.keys(numbers)) $(key).onchange = () => changed({ [key]: Number($(key).value) });
  for (const key of ["problem", "activation", "optimizer", "variant", "engine", "regularization", "loss"]) {
    $(key).onchange = () => changed({ [key]: $(key).value });
  }
  $("ratio").oninput = () => changed({ ratio: Number($("ratio").value) / 100 }, 200);
  $("noise").oninput = () => changed({ noise: Number($("noise").value) / 100 }, 200);
  $("show-test").onchange = () => state.frame && drawHeatmap();
  $("apply-spec").onclick = () => changed({ spec: $("spec").value.trim() });
  $("spec").onkeydown = (e) => { if (e.key === "Enter") changed({ spec: $("spec").value.trim() }); };
  $("add-layer").onclick = () => {
    const max = state.limits ? state.limits.max_hidden_layers : 8;
    if (state.settings.hidden.length >= max) return showMessage(`at most ${max} hidden layers in a playground session`, "limit");
    changed({ hidden: [...state.settings.hidden, 2] });
  };
  $("remove-layer").onclick = () => changed({ hidden: state.settings.hidden.slice(0, -1) });
  $("layer").onchange = () => send({ type: "layer", name: $("layer").value });
  $("export").onclick = () => send({ type: "export" });
  $("csv").onchange = async () => {
    const file = $("csv").files[0];
    if (!file) return;
    const max = state.limits ? state.limits.max_upload_bytes : 262144;
    if (file.size > max) return showMessage(`${file.name} is ${file.size} bytes; uploads are limited to ${max} bytes`, "limit");
    send({ type: "upload", name: file.name, text: await file.text() });
  };
  const features = $("features");
  for (const name of state.options.features) {
    const label = document.createElement("label"), box = document.createElement("input");
    box.type = "checkbox"; box.value = name; box.id = `feature-${name}`;
    box.onchange = () => changed({ features: state.options.features.filter((f) => $(`feature-${f}`).checked) });
    label.append(box, document.createTextNode(" " + FEATURE_LABELS[name]));
    features.append(label);
  }
}

async function main() {
  const options = await (await fetch("/api/options")).json();
  state.options = options; state.defaults = options.defaults; state.limits = options.limits;
  const problems = [...options.problems.classification, ...options.problems.regression, "upload"];
  fillSelect("problem", problems, { plane: "plane (regression)", gauss: "gauss (regression)", upload: "uploaded CSV" });
  fillSelect("activation", options.activations);
  fillSelect("optimizer", options.optimizers);
  fillSelect("engine", options.engines);
  fillSelect("loss", ["", ...options.losses], { "": "by task" });
  state.settings = readUrl(options.defaults);
  bind(); showSettings(); writeUrl(); connect();
}
main();

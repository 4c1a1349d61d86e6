// labctl web: the page. Plain JS and SVG, no library, no build step.
// It draws one lab from a snapshot and keeps it live from the server's
// event stream (/api/labs/LAB/events: snapshot, topology, counters,
// programs, checks, log, down). All text from the lab goes in through
// textContent, never as HTML.
'use strict';

const SVGNS = 'http://www.w3.org/2000/svg';
// The impairment form's fields are `labctl netem set`'s flags, from /api/session.
const fieldNames = () => (ui.session.fields || []).map(f => f.name);
// The fixed order of a direction's counters in a "counters" event (docs/web.md).
const C = { packets: 0, bytes: 1, delivered: 2, dropped: 3, lost: 4, queue: 5, corrupted: 6, duplicated: 7,
  reordered: 8, down: 9, queued: 10, split: 11, pps: 12, bps: 13 };
const LOG_MAX = 2000; // output lines kept on the page

const ui = {
  session: { write: false, lab: '' },
  lab: '',
  es: null,
  topo: null,
  structure: '',
  programs: [],
  checks: null,
  counters: null,
  prev: null,
  history: {},
  down: null,
  pos: {},
  sel: null, // {kind: 'node'|'link', id}
  formDirty: false,
  stats: { opens: 0, snapshots: 0, events: 0, errors: 0 }, // for tests and curious users
};
window.labctlWeb = ui;

function $(sel, root) { return (root || document).querySelector(sel); }
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k.nodeType ? k : String(k));
  return e;
}
function sv(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function fmtNum(n) {
  if (n < 1000) return String(Math.round(n));
  const u = ['k', 'M', 'G', 'T'];
  let i = -1;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0) + u[i];
}
function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(1) + ' ' + u[i];
}
function fmtRate(bps) { return bps <= 0 ? '0' : fmtNum(bps) + 'bit/s'; }
function hash(s) { let h = 2166136261; for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); } return h >>> 0; }

// ---- session, lab list ----

async function getJSON(url) {
  const r = await fetch(url, { credentials: 'same-origin' });
  const b = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(b.error || r.statusText);
  return b;
}

async function post(url, body) {
  const r = await fetch(url, { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}) });
  const b = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) { const e = new Error(b.error || r.statusText); e.body = b; throw e; }
  return b;
}

function labFromHash() {
  const m = /(?:^|[#&])lab=([^&]*)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : '';
}

async function refreshLabs() {
  let labs;
  try { labs = await getJSON('/api/labs'); } catch (e) { setConn(false, 'server unreachable: ' + e.message); return; }
  const nav = $('#labs');
  nav.textContent = '';
  for (const l of labs) {
    const a = el('a', { href: '#lab=' + encodeURIComponent(l.lab), 'data-lab': l.lab, class: (l.lab === ui.lab ? 'cur' : '') + (l.phase === 'down' ? ' down' : ''),
      title: `${l.source || ''} ${l.nodes || 0} nodes, ${l.links || 0} links, ${l.backend || ''}, ${l.phase || ''}` }, l.lab);
    nav.append(a);
  }
  if (!labs.length) nav.append(el('span', { class: 'muted' }, 'no lab is up (start one with labctl up)'));
  if (!ui.lab && !labFromHash() && labs.length) { location.hash = 'lab=' + encodeURIComponent(labs[0].lab); }
  // A lab that was down is back: watch it again.
  if (ui.lab && ui.es && ui.es.readyState === EventSource.CLOSED && labs.some(l => l.lab === ui.lab && l.phase !== 'down')) openLab(ui.lab);
}

function setConn(ok, text) {
  const c = $('#conn');
  c.textContent = text;
  c.className = 'conn ' + (ok ? 'ok' : 'bad');
}

function banner(text, cls) {
  const b = $('#banner');
  if (!text) { b.hidden = true; b.textContent = ''; return; }
  b.hidden = false;
  b.className = 'banner ' + (cls || '');
  b.textContent = text;
}

// ---- the stream ----

function openLab(lab) {
  if (ui.es) { ui.es.close(); ui.es = null; }
  ui.lab = lab;
  ui.stats.opens++;
  ui.topo = null; ui.structure = ''; ui.programs = []; ui.checks = null; ui.counters = null; ui.prev = null; ui.history = {}; ui.down = null; ui.sel = null;
  $('#graph').textContent = '';
  $('#log').textContent = '';
  $('#links tbody').textContent = '';
  $('#programs tbody').textContent = '';
  $('#detail').textContent = '';
  banner('');
  for (const a of document.querySelectorAll('#labs a')) a.classList.toggle('cur', a.dataset.lab === lab);
  if (!lab) return;
  document.title = 'labctl web: ' + lab;
  const es = new EventSource('/api/labs/' + encodeURIComponent(lab) + '/events');
  ui.es = es;
  es.onopen = () => setConn(true, 'live');
  es.onerror = () => {
    ui.stats.errors++;
    if (ui.es !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream: the lab is not on this machine (any more).
      ui.down = ui.down || { reason: `lab ${lab} is down (it has no state on this machine)` };
      showDown();
      setConn(false, 'lab down');
      return;
    }
    setConn(false, 'reconnecting…');
  };
  const on = (name, fn) => es.addEventListener(name, (ev) => {
    if (ui.es !== es) return;
    ui.stats.events++;
    if (name === 'snapshot') ui.stats.snapshots++;
    let d;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    try { fn(d); } catch (e) { console.error(name, e); }
  });
  on('snapshot', (s) => {
    ui.history = s.history || {};
    ui.down = s.down;
    $('#log').textContent = '';
    setTopology(s.topology);
    setPrograms(s.programs || []);
    setChecks(s.checks);
    if (s.counters) setCounters(s.counters, true);
    addLog(s.log || []);
    showDown();
  });
  on('topology', (t) => { ui.down = null; setTopology(t); showDown(); });
  on('counters', (c) => setCounters(c, false));
  on('programs', setPrograms);
  on('checks', setChecks);
  on('log', addLog);
  on('down', (d) => { ui.down = d; showDown(); });
}

function showDown() {
  document.body.classList.toggle('labdown', !!ui.down);
  updateNodeStates();
  if (ui.down) { banner(ui.down.reason || 'the lab is down', 'down'); setConn(true, 'lab down'); return; }
  if (ui.topo && ui.topo.phase !== 'up') { banner(`lab ${ui.topo.lab} is ${ui.topo.phase}`); return; }
  banner('');
}

// ---- topology ----

function setTopology(t) {
  if (!t) return;
  ui.topo = t;
  $('#labinfo').textContent = `${t.lab} (${t.source}) · ${t.phase} · impairments: ${t.backend} · ${t.nodes.length} nodes, ${t.links.length} links`;
  const structure = JSON.stringify([t.id, t.nodes.map(n => n.name), t.links.map(l => [l.id, l.a.node, l.b.node])]);
  if (structure !== ui.structure) {
    ui.structure = structure;
    layout(t);
    drawGraph(t);
    buildLinkRows(t);
  } else {
    updateLabels(t);
  }
  updateNodeStates();
  renderDetail(false);
}

// layout places the nodes with a force-directed (Fruchterman-Reingold)
// layout, seeded from the names so the same lab looks the same each time.
function layout(t) {
  const names = t.nodes.map(n => n.name);
  const n = names.length;
  const idx = Object.fromEntries(names.map((x, i) => [x, i]));
  const W = Math.max(600, 90 * Math.sqrt(n) * 2), H = W * 0.6;
  const x = new Float64Array(n), y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = 2 * Math.PI * i / n, h = hash(names[i]);
    x[i] = W / 2 + W * 0.35 * Math.cos(a) + (h % 17);
    y[i] = H / 2 + H * 0.35 * Math.sin(a) + ((h >> 5) % 17);
  }
  const edges = t.links.map(l => [idx[l.a.node], idx[l.b.node]]).filter(e => e[0] !== undefined && e[1] !== undefined);
  const k = Math.sqrt(W * H / Math.max(n, 1)) * 0.8;
  const iters = n > 400 ? 120 : 300;
  const dx = new Float64Array(n), dy = new Float64Array(n);
  let temp = W / 8;
  for (let it = 0; it < iters; it++) {
    dx.fill(0); dy.fill(0);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        let ex = x[i] - x[j], ey = y[i] - y[j];
        let d2 = ex * ex + ey * ey;
        if (d2 < 0.01) { ex = 0.1; ey = 0.1; d2 = 0.02; }
        const f = k * k / d2;
        dx[i] += ex * f; dy[i] += ey * f; dx[j] -= ex * f; dy[j] -= ey * f;
      }
    }
    for (const [a, b] of edges) {
      const ex = x[a] - x[b], ey = y[a] - y[b];
      const d = Math.sqrt(ex * ex + ey * ey) || 0.1;
      const f = d / k;
      dx[a] -= ex * f; dy[a] -= ey * f; dx[b] += ex * f; dy[b] += ey * f;
    }
    for (let i = 0; i < n; i++) {
      // a weak pull to the middle keeps separate parts on the page
      dx[i] += (W / 2 - x[i]) * 0.01; dy[i] += (H / 2 - y[i]) * 0.01;
      const d = Math.sqrt(dx[i] * dx[i] + dy[i] * dy[i]) || 1;
      const m = Math.min(d, temp);
      x[i] += dx[i] / d * m; y[i] += dy[i] / d * m;
    }
    temp *= 0.985;
  }
  ui.pos = {};
  for (let i = 0; i < n; i++) ui.pos[names[i]] = [x[i], y[i]];
}

function drawGraph(t) {
  const svg = $('#graph');
  svg.textContent = '';
  const ps = Object.values(ui.pos);
  if (!ps.length) return;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of ps) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
  const pad = 70;
  ui.view = [x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad];
  ui.fit = ui.view.slice();
  svg.setAttribute('viewBox', ui.view.join(' '));
  svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
  const gl = sv('g', { class: 'links' }), gn = sv('g', { class: 'nodes' });
  svg.append(gl, gn);
  for (const l of t.links) {
    const a = ui.pos[l.a.node], b = ui.pos[l.b.node];
    if (!a || !b) continue;
    const g = sv('g', { class: 'link', 'data-link': l.id });
    const title = sv('title', {});
    g.append(title);
    g.append(sv('line', { class: 'hit', x1: a[0], y1: a[1], x2: b[0], y2: b[1] }));
    g.append(sv('line', { class: 'wire', x1: a[0], y1: a[1], x2: b[0], y2: b[1], 'stroke-width': 2 }));
    // One label per direction, on the sender's side of the middle.
    const mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2;
    const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
    const nx = -(b[1] - a[1]) / len, ny = (b[0] - a[0]) / len;
    for (const [dir, p, off] of [['a', a, 9], ['b', b, -9]]) {
      const tx = sv('text', { class: 'imp', 'data-dir': dir, x: (p[0] + mx) / 2 + nx * off, y: (p[1] + my) / 2 + ny * off, 'text-anchor': 'middle' });
      g.append(tx);
    }
    g.addEventListener('click', () => select('link', l.id));
    gl.append(g);
  }
  for (const n of t.nodes) {
    const p = ui.pos[n.name];
    const g = sv('g', { class: 'node ' + n.kind, 'data-node': n.name, 'data-kind': n.kind, transform: `translate(${p[0]},${p[1]})` });
    let shape;
    if (n.kind === 'switch') shape = sv('rect', { class: 'shape', x: -16, y: -9, width: 32, height: 18, rx: 3 });
    else if (n.kind === 'router') shape = sv('polygon', { class: 'shape', points: '0,-15 15,0 0,15 -15,0' });
    else shape = sv('circle', { class: 'shape', r: 13 });
    const title = sv('title', {});
    title.textContent = nodeTitle(n);
    g.append(title, shape);
    const label = sv('text', { class: 'name', y: 28, 'text-anchor': 'middle' });
    label.textContent = n.name;
    g.append(label);
    g.addEventListener('click', () => select('node', n.name));
    gn.append(g);
  }
  updateLabels(t);
}

function nodeTitle(n) {
  const lines = [`${n.name} (${n.kind}) netns ${n.netns}`];
  for (const i of n.interfaces || []) lines.push(`${i.name} → ${i.peer} [${i.link}] ${(i.addrs || []).join(', ')} ${i.mac || ''}`);
  for (const r of n.routes || []) lines.push('route ' + r);
  return lines.join('\n');
}

function shortSpec(s) { return s && s !== 'clean' ? s : ''; }

function updateLabels(t) {
  for (const l of t.links) {
    const g = document.querySelector(`#graph .link[data-link="${CSS.escape(l.id)}"]`);
    if (!g) continue;
    $('title', g).textContent = `${l.id}: ${l.a.node}:${l.a.iface} ↔ ${l.b.node}:${l.b.iface} (${l.via})\n${l.a.node} → ${l.b.node}: ${l.a_to_b}\n${l.b.node} → ${l.a.node}: ${l.b_to_a}`;
    $('text[data-dir="a"]', g).textContent = shortSpec(l.a_to_b) ? '→ ' + shortSpec(l.a_to_b) : '';
    $('text[data-dir="b"]', g).textContent = shortSpec(l.b_to_a) ? '← ' + shortSpec(l.b_to_a) : '';
    for (const dir of ['a', 'b']) {
      const row = document.querySelector(`#links tr[data-link="${CSS.escape(l.id)}"][data-dir="${dir}"]`);
      if (row) $('.imp', row).textContent = dir === 'a' ? l.a_to_b : l.b_to_a;
    }
  }
}

// nodeState is a node's colour: its programs' states for a host, gone
// when its namespace is missing.
function nodeState(name) {
  if (ui.down || (ui.counters && (ui.counters.gone || []).includes(name))) return 'st-gone';
  const ps = ui.programs.filter(p => p.host === name);
  if (!ps.length) return 'st-idle';
  const cls = ps.map(p => stateClass(p));
  if (cls.includes('st-bad')) return 'st-bad';
  if (cls.includes('st-wait')) return 'st-wait';
  if (cls.includes('st-ok')) return 'st-ok';
  return 'st-done';
}

function stateClass(p) {
  switch (p.state) {
    case 'running': case 'ready': return 'st-ok';
    case 'waiting': return 'st-wait';
    case 'exited': return p.status === 0 ? 'st-done' : 'st-bad';
    case 'unknown': return 'st-idle';
  }
  return 'st-bad'; // killed, timed out, skipped, failed to start
}

function updateNodeStates() {
  for (const g of document.querySelectorAll('#graph .node')) {
    const st = nodeState(g.dataset.node);
    g.classList.remove('st-ok', 'st-wait', 'st-done', 'st-bad', 'st-gone', 'st-idle');
    g.classList.add(st);
    g.dataset.state = st.slice(3);
  }
}

// zoomable lets the wheel zoom the graph around the pointer, a drag pan
// it, and a double click fit it again: big labs need it.
function zoomable() {
  const svg = $('#graph');
  const toGraph = (ev) => {
    const r = svg.getBoundingClientRect();
    const [vx, vy, vw, vh] = ui.view;
    const s = Math.max(vw / r.width, vh / r.height); // xMidYMid meet
    return [vx + vw / 2 + (ev.clientX - r.left - r.width / 2) * s, vy + vh / 2 + (ev.clientY - r.top - r.height / 2) * s, s];
  };
  const set = () => svg.setAttribute('viewBox', ui.view.join(' '));
  svg.addEventListener('wheel', (ev) => {
    if (!ui.view) return;
    ev.preventDefault();
    const [gx, gy] = toGraph(ev);
    const f = ev.deltaY > 0 ? 1.2 : 1 / 1.2;
    const [vx, vy, vw, vh] = ui.view;
    ui.view = [gx - (gx - vx) * f, gy - (gy - vy) * f, vw * f, vh * f];
    set();
  }, { passive: false });
  let drag = null;
  svg.addEventListener('pointerdown', (ev) => { if (ui.view && ev.button === 0) drag = { x: ev.clientX, y: ev.clientY, view: ui.view.slice(), moved: false }; });
  window.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    const [, , s] = toGraph(ev);
    const dx = (ev.clientX - drag.x) * s, dy = (ev.clientY - drag.y) * s;
    if (Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) > 3) drag.moved = true;
    if (drag.moved) { ui.view = [drag.view[0] - dx, drag.view[1] - dy, drag.view[2], drag.view[3]]; set(); }
  });
  window.addEventListener('pointerup', () => { drag = null; });
  svg.addEventListener('dblclick', () => { if (ui.fit) { ui.view = ui.fit.slice(); set(); } });
}

// ---- counters ----

function buildLinkRows(t) {
  const tb = $('#links tbody');
  tb.textContent = '';
  for (const l of t.links) {
    for (const dir of ['a', 'b']) {
      const from = dir === 'a' ? l.a.node : l.b.node, to = dir === 'a' ? l.b.node : l.a.node;
      const tr = el('tr', { 'data-link': l.id, 'data-dir': dir, onclick: () => select('link', l.id) },
        el('td', {}, dir === 'a' ? l.id : ''),
        el('td', {}, `${from} → ${to}`),
        el('td', { class: 'imp' }, dir === 'a' ? l.a_to_b : l.b_to_a),
        el('td', { class: 'n c-packets', 'data-v': 0 }, '0'),
        el('td', { class: 'n c-bytes', 'data-v': 0 }, '0'),
        el('td', { class: 'n c-delivered', 'data-v': 0 }, '0'),
        el('td', { class: 'n c-rate', 'data-v': 0 }, '0'),
        el('td', { class: 'drops', 'data-v': 0 }, '0'),
        el('td', {}, spark()));
      tb.append(tr);
    }
  }
}

function spark() {
  const s = sv('svg', { class: 'spark', viewBox: '0 0 60 18', preserveAspectRatio: 'none' });
  s.append(sv('polyline', { points: '' }));
  return s;
}

function drawSpark(svg, vals) {
  if (!svg) return;
  const max = Math.max(1, ...vals);
  const pts = vals.map((v, i) => `${60 - vals.length + i},${17 - 16 * v / max}`).join(' ');
  svg.firstChild.setAttribute('points', pts);
}

function setCounters(c, fromSnapshot) {
  ui.prev = fromSnapshot ? null : ui.counters;
  ui.counters = c;
  if (!fromSnapshot) {
    for (const [id, w] of Object.entries(c.links || {})) {
      const h = ui.history[id] || [[], []];
      h[0].push(w.a[C.bps]); h[1].push(w.b[C.bps]);
      for (const d of [0, 1]) if (h[d].length > 60) h[d].splice(0, h[d].length - 60);
      ui.history[id] = h;
    }
  }
  if (!ui.topo) return;
  for (const l of ui.topo.links) {
    const w = (c.links || {})[l.id];
    const g = document.querySelector(`#graph .link[data-link="${CSS.escape(l.id)}"]`);
    const p = ui.prev && ui.prev.links ? ui.prev.links[l.id] : null;
    if (g && w) {
      const bps = Math.max(w.a[C.bps], w.b[C.bps]);
      const width = 1.5 + 7 * Math.log10(1 + bps / 1e3) / 6; // 1 kbit/s .. 1 Gbit/s
      $('.wire', g).setAttribute('stroke-width', width.toFixed(2));
      const dropped = p ? (w.a[C.dropped] - p.a[C.dropped]) + (w.b[C.dropped] - p.b[C.dropped]) : 0;
      g.classList.toggle('loaded', bps > 0);
      g.classList.toggle('drops', dropped > 0);
      g.classList.toggle('down', !!w.down);
      g.dataset.packets = w.a[C.packets] + w.b[C.packets];
    }
    for (const dir of ['a', 'b']) {
      const row = document.querySelector(`#links tr[data-link="${CSS.escape(l.id)}"][data-dir="${dir}"]`);
      if (!row || !w) continue;
      const d = w[dir];
      setCell($('.c-packets', row), d[C.packets], fmtNum(d[C.packets]));
      setCell($('.c-bytes', row), d[C.bytes], fmtBytes(d[C.bytes]));
      setCell($('.c-delivered', row), d[C.delivered], fmtNum(d[C.delivered]));
      setCell($('.c-rate', row), d[C.bps], `${fmtRate(d[C.bps])} ${fmtNum(d[C.pps])}p/s`);
      const drops = $('.drops', row);
      drops.dataset.v = d[C.dropped];
      drops.textContent = '';
      if (d[C.split]) {
        const causes = [['lost', C.lost], ['queue', C.queue], ['corrupted', C.corrupted], ['duplicated', C.duplicated], ['reordered', C.reordered], ['down', C.down]];
        let any = false;
        for (const [name, i] of causes) {
          if (d[i] > 0) { drops.append(el('span', { class: 'cause', 'data-cause': name }, `${name} ${fmtNum(d[i])}`)); any = true; }
        }
        if (!any) drops.textContent = '0';
      } else {
        drops.textContent = d[C.dropped] > 0 ? `dropped ${fmtNum(d[C.dropped])}` : '0';
      }
      if (w.down) drops.append(el('span', { class: 'cause' }, ' (link down)'));
      drawSpark($('.spark', row), (ui.history[l.id] || [[], []])[dir === 'a' ? 0 : 1]);
    }
  }
  updateNodeStates();
  if (ui.sel && ui.sel.kind === 'link') renderLinkCounters();
  const err = $('#counters-error');
  err.textContent = c.error ? 'counters: ' + c.error : '';
}

function setCell(td, v, text) { td.dataset.v = v; td.textContent = text; }

// ---- programs, checks, output ----

function setPrograms(ps) {
  ui.programs = ps || [];
  const tb = $('#programs tbody');
  tb.textContent = '';
  const filter = $('#log-filter');
  const have = new Set([...filter.options].map(o => o.value));
  for (const p of ui.programs) {
    let text = p.state;
    if (p.state === 'exited' && p.status !== undefined) text = `exited ${p.status}`;
    if (p.restarts) text += ` (restarted ${p.restarts}×)`;
    const btn = el('button', { class: 'restart', disabled: !ui.session.write || ui.down ? true : null, title: ui.session.write ? 'restart this program' : 'read-only: open the URL labctl web printed' }, 'restart');
    btn.addEventListener('click', () => restartProgram(p.program, btn));
    tb.append(el('tr', { 'data-program': p.program, 'data-state': p.state },
      el('td', { title: p.command }, p.program),
      el('td', {}, el('span', { class: 'state ' + stateClass(p) }, text), p.detail && p.state !== 'running' && p.state !== 'ready' ? el('span', { class: 'muted' }, ' ' + p.detail) : null),
      el('td', {}, btn)));
    if (!have.has(p.program)) filter.append(el('option', { value: p.program }, p.program));
  }
  updateNodeStates();
}

async function restartProgram(key, btn) {
  const [host, prog] = key.split('/');
  btn.disabled = true;
  const msg = btn.parentElement.querySelector('.formerr') || el('span', { class: 'formerr' });
  btn.parentElement.append(msg);
  msg.textContent = '';
  try {
    await post(`/api/labs/${encodeURIComponent(ui.lab)}/programs/${encodeURIComponent(host)}/${encodeURIComponent(prog)}/restart`);
  } catch (e) {
    msg.textContent = e.message;
  } finally {
    btn.disabled = false;
  }
}

function setChecks(res) {
  ui.checks = res;
  const ul = $('#checks');
  ul.textContent = '';
  if (!res) { ul.append(el('li', { class: 'muted' }, 'no result yet (the checks run when the programs are done)')); return; }
  if (!res.checks || !res.checks.length) { ul.append(el('li', { class: 'muted' }, 'this lab has no checks')); return; }
  for (const c of res.checks) {
    ul.append(el('li', { class: 'check ' + (c.pass ? 'pass' : 'fail') },
      el('span', { class: 'verdict' }, c.pass ? 'PASS' : 'FAIL'), c.title,
      !c.pass && c.detail ? el('span', { class: 'why' }, c.detail) : null));
  }
  ul.append(el('li', { class: 'muted summary' }, `${res.passed} passed, ${res.failed} failed`));
}

function addLog(lines) {
  const box = $('#log');
  const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
  const filter = $('#log-filter').value, sys = $('#log-sys').checked;
  const frag = document.createDocumentFragment();
  const mark = { out: '|', err: '!', in: '>', sys: '*', log: '~' };
  for (const l of lines) {
    const d = el('div', { class: 'line s-' + l.s, 'data-k': l.k, 'data-s': l.s, title: new Date(l.t).toISOString() },
      el('span', { class: 'k' }, l.k), el('span', { class: 'm' }, mark[l.s] || '?'), el('span', { class: 'x' }, l.x));
    d.hidden = !logVisible(d, filter, sys);
    frag.append(d);
  }
  box.append(frag);
  while (box.childElementCount > LOG_MAX) box.firstElementChild.remove();
  if (stick) box.scrollTop = box.scrollHeight;
}

function logVisible(d, filter, sys) {
  if (filter && d.dataset.k !== filter) return false;
  return sys || d.dataset.s !== 'sys';
}

function refilterLog() {
  const filter = $('#log-filter').value, sys = $('#log-sys').checked;
  for (const d of $('#log').children) d.hidden = !logVisible(d, filter, sys);
}

// ---- details: a node or a link ----

function select(kind, id) {
  ui.sel = { kind, id };
  ui.formDirty = false;
  ui.formMsg = null;
  for (const g of document.querySelectorAll('#graph .sel, #links tr.sel')) g.classList.remove('sel');
  if (kind === 'node') { const g = document.querySelector(`#graph .node[data-node="${CSS.escape(id)}"]`); if (g) g.classList.add('sel'); }
  if (kind === 'link') {
    const g = document.querySelector(`#graph .link[data-link="${CSS.escape(id)}"]`); if (g) g.classList.add('sel');
    for (const r of document.querySelectorAll(`#links tr[data-link="${CSS.escape(id)}"]`)) r.classList.add('sel');
  }
  renderDetail(true);
}

function renderDetail(force) {
  const box = $('#detail');
  if (!ui.sel || !ui.topo) return;
  if (ui.sel.kind === 'node') {
    const n = ui.topo.nodes.find(x => x.name === ui.sel.id);
    if (!n) { box.textContent = ''; return; }
    box.textContent = '';
    box.append(el('h3', {}, `${n.name} `, el('span', { class: 'muted' }, `${n.kind}, netns ${n.netns}`)));
    const t = el('table', { class: 'ifaces' }, el('tr', {}, el('th', {}, 'interface'), el('th', {}, 'address'), el('th', {}, 'MAC'), el('th', {}, 'to')));
    for (const i of n.interfaces || []) t.append(el('tr', {}, el('td', {}, i.name), el('td', {}, (i.addrs || []).join(', ')), el('td', {}, i.mac || ''), el('td', {}, `${i.peer} (${i.link})`)));
    box.append(t);
    for (const r of n.routes || []) box.append(el('div', { class: 'muted' }, 'route ' + r));
    const ps = ui.programs.filter(p => p.host === n.name);
    if (ps.length) box.append(el('h3', {}, 'programs'), ...ps.map(p => el('div', {}, `${p.program}: ${p.state}${p.detail ? ' — ' + p.detail : ''}`)));
    return;
  }
  const l = ui.topo.links.find(x => x.id === ui.sel.id);
  if (!l) { box.textContent = ''; return; }
  if (!force && ui.formDirty) { renderLinkCounters(); return; }
  box.textContent = '';
  box.append(el('h3', {}, `link ${l.id} `, el('span', { class: 'muted' }, `via ${l.via}`)));
  box.append(el('table', {},
    el('tr', {}, el('th', {}, 'end'), el('th', {}, 'interface'), el('th', {}, 'address')),
    ...[l.a, l.b].map(e => {
      const n = ui.topo.nodes.find(x => x.name === e.node);
      const i = n ? (n.interfaces || []).find(x => x.name === e.iface) : null;
      return el('tr', {}, el('td', {}, e.node), el('td', {}, e.iface), el('td', {}, i ? (i.addrs || []).join(', ') : ''));
    })));
  box.append(el('div', { id: 'link-counters' }));
  renderLinkCounters();
  // The impairment form: the fields of `labctl netem set`.
  const ro = !ui.session.write || !!ui.down;
  const form = el('form', { class: 'netem', id: 'netem-form', 'data-link': l.id });
  const from = el('select', { name: 'from', id: 'f-from' },
    el('option', { value: '' }, 'both directions'),
    el('option', { value: l.a.node }, `what ${l.a.node} sends (${l.a.node} → ${l.b.node})`),
    el('option', { value: l.b.node }, `what ${l.b.node} sends (${l.b.node} → ${l.a.node})`));
  form.append(el('label', { for: 'f-from' }, 'direction'), from, el('span', { class: 'err', 'data-field': 'from' }));
  const fill = (fields) => { for (const f of fieldNames()) form.elements[f].value = fields[f] || ''; };
  for (const fd of ui.session.fields || []) {
    const f = fd.name;
    const input = fd.type === 'bool'
      ? el('select', { name: f, id: 'f-' + f, title: fd.help }, el('option', { value: '' }, 'no'), el('option', { value: 'true' }, 'yes'))
      : el('input', { name: f, id: 'f-' + f, autocomplete: 'off', placeholder: placeholder(fd), title: fd.help });
    input.addEventListener('input', () => { ui.formDirty = true; });
    form.append(el('label', { for: 'f-' + f, title: fd.help }, '--' + f), input, el('span', { class: 'err', 'data-field': f }));
  }
  from.addEventListener('change', () => fill(from.value === l.b.node ? l.b_fields : l.a_fields));
  const apply = el('button', { type: 'submit', id: 'netem-apply', disabled: ro ? true : null }, 'apply');
  form.append(el('span', {}), apply);
  form.append(el('span', { class: 'formerr' + (ui.formMsg && ui.formMsg.ok ? ' ok-msg' : ''), id: 'netem-error' }, ui.formMsg && ui.formMsg.link === l.id ? ui.formMsg.text : ''));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); applyNetem(l, form); });
  box.append(el('h3', {}, 'impairment ', el('span', { class: 'muted' }, 'as labctl netem set: fields left empty are clean')));
  box.append(form);
  fill(l.a_fields);
  const acts = el('div', { class: 'actions' });
  const down = el('button', { id: 'link-down', disabled: ro ? true : null }, 'take down');
  const up = el('button', { id: 'link-up', disabled: ro ? true : null }, 'bring up');
  down.addEventListener('click', () => linkState(l, 'down'));
  up.addEventListener('click', () => linkState(l, 'up'));
  acts.append(down, up);
  box.append(el('h3', {}, 'link'), acts);
  if (l.capture) {
    const secs = el('input', { id: 'cap-secs', value: '10', size: 3 });
    const point = el('select', { id: 'cap-point' }, el('option', { value: 'delivered' }, 'delivered'), el('option', { value: 'sent' }, 'sent'));
    const a = el('a', { id: 'cap-link', href: '#', download: '' }, 'download capture (pcapng)');
    const upd = () => { a.href = `/api/labs/${encodeURIComponent(ui.lab)}/links/${encodeURIComponent(l.id)}/capture?seconds=${encodeURIComponent(secs.value)}&point=${point.value}`; };
    secs.addEventListener('input', upd); point.addEventListener('change', upd); upd();
    box.append(el('div', { class: 'actions' }, 'capture for', secs, 's at', point, a));
  } else {
    box.append(el('div', { class: 'muted' }, 'capture: only links through the userspace engine'));
  }
  if (ro) box.append(el('p', { class: 'muted' }, ui.down ? 'the lab is down' : 'read-only: changes need the token; open the URL labctl web printed'));
}

// placeholder is the example in a flag's help ("e.g. 50ms"), or its type.
function placeholder(fd) {
  const m = /e\.g\. ([^;,() ]+(?:,[^;() ]+)?)/.exec(fd.help || '');
  return m ? m[1] : fd.type;
}

function renderLinkCounters() {
  const box = $('#link-counters');
  if (!box || !ui.sel || !ui.topo) return;
  const l = ui.topo.links.find(x => x.id === ui.sel.id);
  const w = ui.counters && ui.counters.links ? ui.counters.links[l.id] : null;
  box.textContent = '';
  const t = el('table', {}, el('tr', {}, el('th', {}, ''), el('th', {}, `${l.a.node} → ${l.b.node}`), el('th', {}, `${l.b.node} → ${l.a.node}`)));
  const row = (name, f) => t.append(el('tr', {}, el('td', {}, name), el('td', {}, w ? f(w.a) : ''), el('td', {}, w ? f(w.b) : '')));
  t.append(el('tr', {}, el('td', {}, 'impairment'), el('td', {}, l.a_to_b), el('td', {}, l.b_to_a)));
  row('packets', d => fmtNum(d[C.packets]));
  row('bytes', d => fmtBytes(d[C.bytes]));
  row('delivered', d => fmtNum(d[C.delivered]));
  row('rate', d => `${fmtRate(d[C.bps])}, ${fmtNum(d[C.pps])} p/s`);
  row('dropped', d => fmtNum(d[C.dropped]) + (d[C.split] ? '' : ' (causes not known)'));
  if (w && (w.a[C.split] || w.b[C.split])) {
    row('· lost', d => fmtNum(d[C.lost])); row('· queue full', d => fmtNum(d[C.queue])); row('· while down', d => fmtNum(d[C.down]));
    row('corrupted', d => fmtNum(d[C.corrupted])); row('duplicated', d => fmtNum(d[C.duplicated])); row('reordered', d => fmtNum(d[C.reordered]));
  }
  row('queued now', d => fmtNum(d[C.queued]));
  box.append(t);
  if (w && w.down) box.append(el('div', { class: 'formerr' }, 'the link is down'));
}

async function applyNetem(l, form) {
  for (const e of form.querySelectorAll('.err')) e.textContent = '';
  formMessage(l, false, '');
  const fields = {};
  for (const f of fieldNames()) { const v = form.elements[f].value.trim(); if (v) fields[f] = v; }
  try {
    const r = await post(`/api/labs/${encodeURIComponent(ui.lab)}/links/${encodeURIComponent(l.id)}/netem`, { from: form.elements.from.value, fields });
    ui.formDirty = false;
    formMessage(l, true, `set: ${l.a.node} → ${l.b.node}: ${r.a_to_b}; ${l.b.node} → ${l.a.node}: ${r.b_to_a}`);
  } catch (e) {
    const errs = (e.body && e.body.errors) || [{ field: '', error: e.message }];
    for (const fe of errs) {
      const spot = fe.field ? form.querySelector(`.err[data-field="${CSS.escape(fe.field)}"]`) : null;
      if (spot) spot.textContent = fe.error; else formMessage(l, false, fe.error);
    }
  }
}

async function linkState(l, what) {
  try {
    await post(`/api/labs/${encodeURIComponent(ui.lab)}/links/${encodeURIComponent(l.id)}/${what}`);
    formMessage(l, true, `link ${l.id}: ${what}`);
  } catch (e) {
    formMessage(l, false, e.message);
  }
}

// formMessage shows the outcome of a change under the form; it stays there
// when an update redraws the panel.
function formMessage(l, ok, text) {
  ui.formMsg = { link: l.id, ok, text };
  const m = $('#netem-error');
  if (!m) return;
  m.className = 'formerr' + (ok ? ' ok-msg' : '');
  m.textContent = text;
}

// ---- start ----

async function start() {
  try { ui.session = await getJSON('/api/session'); } catch (e) { setConn(false, e.message); }
  $('#mode').textContent = ui.session.write ? 'changes allowed' : 'read-only';
  zoomable();
  $('#log-filter').addEventListener('change', refilterLog);
  $('#log-sys').addEventListener('change', refilterLog);
  window.addEventListener('hashchange', () => { const l = labFromHash(); if (l !== ui.lab) openLab(l); });
  if (ui.session.lab && !labFromHash()) location.hash = 'lab=' + encodeURIComponent(ui.session.lab);
  await refreshLabs();
  if (labFromHash() !== ui.lab || !ui.es) openLab(labFromHash());
  setInterval(refreshLabs, 2000);
}

start();

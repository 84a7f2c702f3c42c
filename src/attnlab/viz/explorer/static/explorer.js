// attnlab explorer: one offline page, canvas views over lazily decoded attention.
// Data: META (JSON) describes sets -> examples -> maps; each map's attention is a deflated,
// base64 blob (uint8 per-row-scaled for tokens, uint16 for graph edges) decoded on first use.
// Every view draws through a Painter, so the same code renders the canvas and the SVG export.
(function () {
  'use strict';
  const META = JSON.parse(document.getElementById('attnlab-meta').textContent);
  const BLOBS = Object.create(null);
  const $ = (id) => document.getElementById(id);
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const fmt = (v) => (v === null || v === undefined || Number.isNaN(v)) ? '-' : (Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4));

  // ---------- colours ----------
  function buildLut(stops) {
    const lut = new Uint8Array(256 * 3);
    for (let k = 0; k < 256; k++) {
      const t = k / 255; let a = 0;
      while (a < stops.length - 2 && t > stops[a + 1][0]) a++;
      const [t0, c0] = stops[a], [t1, c1] = stops[a + 1], u = (t - t0) / (t1 - t0);
      for (let c = 0; c < 3; c++) lut[k * 3 + c] = Math.round(c0[c] + (c1[c] - c0[c]) * u);
    }
    return lut;
  }
  const SEQ = buildLut([[0, [255, 255, 255]], [0.2, [222, 235, 247]], [0.45, [107, 174, 214]], [0.75, [33, 113, 181]], [1, [8, 38, 94]]]);
  const DIV = buildLut([[0, [33, 102, 172]], [0.5, [247, 247, 247]], [1, [178, 24, 43]]]);
  const HOT = buildLut([[0, [0, 0, 4]], [0.35, [120, 28, 109]], [0.65, [237, 105, 37]], [1, [252, 255, 164]]]);
  const HEADS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#db2777', '#65a30d', '#4f46e5', '#b45309', '#0f766e', '#be123c'];
  const CLASSES = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
  const rgb = (lut, k) => { k = clamp(k | 0, 0, 255); return `rgb(${lut[3 * k]},${lut[3 * k + 1]},${lut[3 * k + 2]})`; };

  // ---------- decoding ----------
  function b64bytes(s) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(s);
    const bin = atob(s), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function blobText(id) { return id in BLOBS ? BLOBS[id] : $('attnlab-' + id).textContent; }
  async function inflate(id) {
    const stream = new Blob([b64bytes(blobText(id))]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  class TokenMap {  // q[h]: uint8 (Lq * Lk) of head h, inflated on first use; scale: rowmax (H * Lq)
    constructor(d, scale) {
      this.d = d; this.lq = d.lq; this.lk = d.lk; this.H = d.heads; this.scale = scale; this.cache = null; this.levels = d.levels || 255;
      this.q = new Array(d.heads).fill(null); this.pending = new Array(d.heads).fill(null);
    }
    async load(heads) {
      await Promise.all(heads.map((h) => this.q[h] || (this.pending[h] = this.pending[h] || inflate(this.d.data[h]).then((b) => { this.q[h] = b; }))));
      return this;
    }
    val(h, i, j) { return this.q[h][i * this.lk + j] * this.scale[h * this.lq + i] / this.levels; }
    err(h, i) { return this.levels < 255 ? this.scale[h * this.lq + i] / (2 * this.levels) : 0; }  // the quantization bound
    matrix(heads) {  // mean over heads, Float32Array (lq * lk)
      const key = heads.join(',');
      if (this.cache && this.cache.key === key) return this.cache.m;
      const { lq, lk, scale } = this, m = new Float32Array(lq * lk), w = 1 / heads.length / this.levels;
      for (const h of heads) {
        const q = this.q[h];
        for (let i = 0; i < lq; i++) {
          const s = scale[h * lq + i] * w, o = i * lk;
          for (let j = 0; j < lk; j++) m[o + j] += q[o + j] * s;
        }
      }
      this.cache = { key, m };
      return m;
    }
  }

  class GraphMap {
    constructor(d, ei, alpha) {
      this.d = d; this.H = d.heads; this.n = d.lq; this.lq = d.lq; this.lk = d.lk; this.E = d.edges;
      this.src = ei.subarray(0, this.E); this.dst = ei.subarray(this.E, 2 * this.E); this.alpha = alpha;
      this.cache = null; this.ecache = null; this.inc = null;
    }
    edgeAlpha(heads) {
      const key = heads.join(',');
      if (this.ecache && this.ecache.key === key) return this.ecache.a;
      const a = new Float32Array(this.E), H = this.H, w = 1 / heads.length / 65535;
      for (let e = 0; e < this.E; e++) { let s = 0; for (const h of heads) s += this.alpha[e * H + h]; a[e] = s * w; }
      this.ecache = { key, a };
      return a;
    }
    incoming(node) {  // edge ids into node (CSR built once)
      if (!this.inc) {
        const start = new Int32Array(this.n + 1);
        for (let e = 0; e < this.E; e++) start[this.dst[e] + 1]++;
        for (let i = 0; i < this.n; i++) start[i + 1] += start[i];
        const fill = start.slice(0, this.n), ids = new Int32Array(this.E);
        for (let e = 0; e < this.E; e++) ids[fill[this.dst[e]]++] = e;
        this.inc = { start, ids };
      }
      return this.inc.ids.subarray(this.inc.start[node], this.inc.start[node + 1]);
    }
    val(h, i, j) { for (const e of this.incoming(i)) if (this.src[e] === j) return this.alpha[e * this.H + h] / 65535; return 0; }
    matrix(heads) {
      if (this.n > 2048) return null;
      const key = heads.join(',');
      if (this.cache && this.cache.key === key) return this.cache.m;
      const a = this.edgeAlpha(heads), m = new Float32Array(this.n * this.n);
      for (let e = 0; e < this.E; e++) m[this.dst[e] * this.n + this.src[e]] += a[e];
      this.cache = { key, m };
      return m;
    }
  }

  const DECODED = new Map();
  function decode(d) {
    if (!DECODED.has(d)) {
      const p = d.graph
        ? Promise.all([inflate(d.edge_index), inflate(d.alpha)]).then(([ei, al]) =>
          new GraphMap(d, new Int32Array(ei.buffer, ei.byteOffset, ei.length / 4), new Uint16Array(al.buffer, al.byteOffset, al.length / 2)))
        : inflate(d.scale).then((sc) => new TokenMap(d, new Float32Array(sc.buffer, sc.byteOffset, sc.length / 4)));
      DECODED.set(d, p);
    }
    return DECODED.get(d);
  }
  // the map with the given heads ready to read
  const getMap = (d, heads) => decode(d).then((m) => (d.graph ? m : m.load(heads)));
  const THUMBS = new Map();
  function thumbBytes(d) { if (!THUMBS.has(d)) THUMBS.set(d, b64bytes(d.thumb)); return THUMBS.get(d); }

  // ---------- painters: canvas and SVG share one interface ----------
  class CanvasPainter {
    constructor(canvas, w, h) {
      const dpr = window.devicePixelRatio || 1;
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
      canvas.style.width = w + 'px'; canvas.style.height = h + 'px';
      this.c = canvas.getContext('2d'); this.c.setTransform(dpr, 0, 0, dpr, 0, 0);
      this.c.fillStyle = '#fff'; this.c.fillRect(0, 0, w, h); this.w = w; this.h = h;
    }
    rect(x, y, w, h, fill, stroke, lw) {
      const c = this.c;
      if (fill) { c.fillStyle = fill; c.fillRect(x, y, w, h); }
      if (stroke) { c.strokeStyle = stroke; c.lineWidth = lw || 1; c.strokeRect(x, y, w, h); }
    }
    line(x1, y1, x2, y2, color, lw, alpha) {
      const c = this.c; c.globalAlpha = alpha === undefined ? 1 : alpha; c.strokeStyle = color; c.lineWidth = lw || 1;
      c.beginPath(); c.moveTo(x1, y1); c.lineTo(x2, y2); c.stroke(); c.globalAlpha = 1;
    }
    circle(x, y, r, fill, stroke) {
      const c = this.c; c.beginPath(); c.arc(x, y, r, 0, 2 * Math.PI);
      if (fill) { c.fillStyle = fill; c.fill(); }
      if (stroke) { c.strokeStyle = stroke; c.lineWidth = 1; c.stroke(); }
    }
    text(s, x, y, o) {
      o = o || {}; const c = this.c;
      c.font = `${o.bold ? '600 ' : ''}${o.size || 12}px system-ui, sans-serif`;
      c.fillStyle = o.color || '#1f2933'; c.textAlign = o.align || 'left'; c.textBaseline = o.base || 'middle';
      if (o.angle) { c.save(); c.translate(x, y); c.rotate(o.angle); c.fillText(s, 0, 0); c.restore(); } else c.fillText(s, x, y);
    }
    image(src, sx, sy, sw, sh, dx, dy, dw, dh, smooth, alpha) {
      const c = this.c; c.imageSmoothingEnabled = !!smooth; c.globalAlpha = alpha === undefined ? 1 : alpha;
      c.drawImage(src, sx, sy, sw, sh, dx, dy, dw, dh); c.globalAlpha = 1;
    }
    measure(s, size) { this.c.font = `${size || 12}px system-ui, sans-serif`; return this.c.measureText(s).width; }
  }
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  class SvgPainter {
    constructor(w, h) { this.w = w; this.h = h; this.out = [`<rect x="0" y="0" width="${w}" height="${h}" fill="#fff"/>`]; this.m = document.createElement('canvas').getContext('2d'); }
    rect(x, y, w, h, fill, stroke, lw) { this.out.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="${fill || 'none'}"${stroke ? ` stroke="${stroke}" stroke-width="${lw || 1}"` : ''}/>`); }
    line(x1, y1, x2, y2, color, lw, alpha) { this.out.push(`<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${color}" stroke-width="${(lw || 1).toFixed(2)}" stroke-opacity="${(alpha === undefined ? 1 : alpha).toFixed(3)}"/>`); }
    circle(x, y, r, fill, stroke) { this.out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}" fill="${fill || 'none'}"${stroke ? ` stroke="${stroke}"` : ''}/>`); }
    text(s, x, y, o) {
      o = o || {};
      const anchor = { left: 'start', center: 'middle', right: 'end' }[o.align || 'left'];
      const base = { middle: 'central', top: 'hanging', bottom: 'text-after-edge', alphabetic: 'alphabetic' }[o.base || 'middle'];
      const rot = o.angle ? ` transform="rotate(${(o.angle * 180 / Math.PI).toFixed(1)} ${x} ${y})"` : '';
      this.out.push(`<text x="${x}" y="${y}" font-family="system-ui, sans-serif" font-size="${o.size || 12}"${o.bold ? ' font-weight="600"' : ''} fill="${o.color || '#1f2933'}" text-anchor="${anchor}" dominant-baseline="${base}"${rot}>${esc(s)}</text>`);
    }
    image(src, sx, sy, sw, sh, dx, dy, dw, dh, smooth, alpha) {
      const cut = document.createElement('canvas'); cut.width = Math.max(1, Math.ceil(sw)); cut.height = Math.max(1, Math.ceil(sh));
      cut.getContext('2d').drawImage(src, sx, sy, sw, sh, 0, 0, sw, sh);
      this.out.push(`<image x="${dx}" y="${dy}" width="${dw}" height="${dh}" preserveAspectRatio="none"${smooth ? '' : ' style="image-rendering:pixelated"'}${alpha !== undefined ? ` opacity="${alpha}"` : ''} href="${cut.toDataURL('image/png')}"/>`);
    }
    measure(s, size) { this.m.font = `${size || 12}px system-ui, sans-serif`; return this.m.measureText(s).width; }
    svg() { return `<svg xmlns="http://www.w3.org/2000/svg" width="${this.w}" height="${this.h}" viewBox="0 0 ${this.w} ${this.h}">\n${this.out.join('\n')}\n</svg>\n`; }
  }

  // ---------- state ----------
  const S = { v: '', s: 0, e: 0, m: 0, h: [0], q: 0, c: 0, zoom: 1, px: 0, py: 0, scroll: 0, sort: '', dir: -1, scale: 'max' };
  const ex = (s) => META.sets[s === undefined ? S.s : s].examples[S.e];
  const mapDesc = (s) => ex(s).maps[S.m];
  const isGraph = () => !!mapDesc().graph;
  const crossMaps = () => ex().maps.map((d, i) => [d, i]).filter(([d]) => d.kind === 'cross' || d.kind === 'alignment');
  function compareOk() {
    if (!S.c || META.sets.length < 2) return false;
    const b = META.sets[1].examples[S.e];
    return !!b && b.maps.length > S.m && b.maps[S.m].lq === mapDesc().lq && b.maps[S.m].lk === mapDesc().lk && b.maps[S.m].heads === mapDesc().heads;
  }
  function viewsFor(e) {
    const graph = e.maps.some((d) => d.graph), v = [];
    if (!graph) v.push('head');
    v.push('model', 'matrix');
    if (e.maps.some((d) => d.kind === 'cross' || d.kind === 'alignment')) v.push('align');
    if (e.image && e.grid) v.push('image');
    if (graph) v.push('graph');
    v.push('stats');
    return v;
  }
  function defaultView(e) {
    const v = viewsFor(e);
    if (v.includes('graph')) return 'graph';
    if (v.includes('image')) return 'image';
    if (v.includes('align')) return 'align';
    return e.maps[0].lq <= 64 ? 'head' : 'matrix';
  }
  function writeHash() {
    const h = `v=${S.v}&s=${S.s}&e=${S.e}&m=${S.m}&h=${S.h.join(',')}&q=${S.q}&c=${S.c}&k=${S.scale}`;
    if (location.hash.slice(1) !== h) history.replaceState(null, '', '#' + h);
  }
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const int = (k, d) => { const v = parseInt(p.get(k), 10); return Number.isFinite(v) ? v : d; };
    S.s = clamp(int('s', 0), 0, META.sets.length - 1);
    S.e = clamp(int('e', 0), 0, META.sets[S.s].examples.length - 1);
    S.m = clamp(int('m', 0), 0, ex().maps.length - 1);
    const H = mapDesc().heads;
    const heads = (p.get('h') || '0').split(',').map((x) => parseInt(x, 10)).filter((x) => x >= 0 && x < H);
    S.h = heads.length ? heads : [0];
    S.q = Math.max(0, int('q', 0));
    S.c = int('c', 0) ? 1 : 0;
    const k = p.get('k');  // colour scale; long inputs default to per row (1/L weights vanish on a linear scale)
    S.scale = ['max', 'sqrt', 'row'].includes(k) ? k : (mapDesc().lq > 64 ? 'row' : 'max');
    const v = p.get('v');
    S.v = viewsFor(ex()).includes(v) ? v : defaultView(ex());
  }

  // ---------- heatmap images ----------
  const lut32 = (lut) => { const o = new Uint32Array(256), b = new Uint8Array(o.buffer); for (let k = 0; k < 256; k++) { b[4 * k] = lut[3 * k]; b[4 * k + 1] = lut[3 * k + 1]; b[4 * k + 2] = lut[3 * k + 2]; b[4 * k + 3] = 255; } return o; };
  const SEQ32 = lut32(SEQ), DIV32 = lut32(DIV);
  const SQRT = new Uint8Array(4096).map((_, k) => Math.round(255 * Math.sqrt(k / 4095)));
  // mat (lq * lk) -> a canvas of lk x lq pixels; colour by value / max (or per row, or sqrt)
  function heatCanvas(mat, lq, lk, mode, diverging) {
    const cv = document.createElement('canvas'); cv.width = lk; cv.height = lq;
    const g = cv.getContext('2d'), img = g.createImageData(lk, lq), px = new Uint32Array(img.data.buffer), n = lq * lk;
    let max = 1e-12;
    for (let k = 0; k < n; k++) { const a = mat[k] < 0 ? -mat[k] : mat[k]; if (a > max) max = a; }
    if (diverging) {
      const f = 127.5 / max;
      for (let k = 0; k < n; k++) px[k] = DIV32[Math.min(255, Math.max(0, (127.5 + mat[k] * f) | 0))];
    } else if (mode === 'sqrt') {
      const f = 4095 / max;
      for (let k = 0; k < n; k++) px[k] = SEQ32[SQRT[(mat[k] * f) | 0]];
    } else if (mode === 'row') {
      for (let i = 0; i < lq; i++) {
        let r = 1e-12; const o = i * lk;
        for (let j = 0; j < lk; j++) if (mat[o + j] > r) r = mat[o + j];
        const f = 255 / r;
        for (let j = 0; j < lk; j++) px[o + j] = SEQ32[(mat[o + j] * f + 0.5) | 0];
      }
    } else {
      const f = 255 / max;
      for (let k = 0; k < n; k++) px[k] = SEQ32[(mat[k] * f + 0.5) | 0];
    }
    g.putImageData(img, 0, 0);
    cv.max = max;
    return cv;
  }
  // one head of a token map -> its heat image without the float matrix (q is already row-scaled)
  function headHeat(m, h, mode) {
    const { lq, lk, scale } = m, q = m.q[h], cv = document.createElement('canvas'); cv.width = lk; cv.height = lq;
    const g = cv.getContext('2d'), img = g.createImageData(lk, lq), px = new Uint32Array(img.data.buffer);
    let max = 1e-12;
    for (let i = 0; i < lq; i++) if (scale[h * lq + i] > max) max = scale[h * lq + i];
    for (let i = 0; i < lq; i++) {
      const o = i * lk, r = scale[h * lq + i] / max, L = m.levels;
      if (mode === 'row') { const f = 255 / L; for (let j = 0; j < lk; j++) px[o + j] = SEQ32[(q[o + j] * f + 0.5) | 0]; }
      else if (mode === 'sqrt') { const f = 4095 * r / L; for (let j = 0; j < lk; j++) px[o + j] = SEQ32[SQRT[(q[o + j] * f) | 0]]; }
      else { const f = r * 255 / L; for (let j = 0; j < lk; j++) px[o + j] = SEQ32[(q[o + j] * f + 0.5) | 0]; }
    }
    g.putImageData(img, 0, 0);
    cv.max = max;
    return cv;
  }
  const HEAT = new Map();
  function heatFor(key, build) { if (!HEAT.has(key)) { if (HEAT.size > 8) HEAT.clear(); HEAT.set(key, build()); } return HEAT.get(key); }

  // ---------- views ----------
  // Each view: async prepare() -> ctx; size(ctx, W, H) -> {w, h}; draw(p, ctx); hover(ctx, x, y) -> text; click(ctx, x, y)
  const V = {};
  const labelsOf = (d, axis) => ex().labels[d.axes[axis]] || [];
  const short = (s, n) => (s.length > n ? s.slice(0, n - 1) + '\u2026' : s);
  let HIT = null;  // the last drawn geometry, for hover and click

  V.matrix = {
    info: 'Rows: queries, columns: keys; the mean of the selected heads. Hover for values, drag to pan, ctrl + wheel to zoom. Gold alignment links are outlined in orange.',
    async prepare() {
      const panels = [{ s: 0, m: await getMap(mapDesc(0), S.h), title: META.sets[0].title }];
      if (compareOk()) {
        panels.push({ s: 1, m: await getMap(mapDesc(1), S.h), title: META.sets[1].title });
        panels.push({ diff: true, title: `${META.sets[0].title} \u2212 ${META.sets[1].title}` });
      }
      return { panels };
    },
    size: (ctx, W, H) => ({ w: W, h: H }),
    draw(p, ctx) {
      const d = mapDesc(), lq = d.lq, lk = d.lk, n = ctx.panels.length, ql = labelsOf(d, 0), kl = labelsOf(d, 1);
      // one head alone: read the bytes (no float matrix); several heads or a difference: the mean matrix
      const single = S.h.length === 1 && !d.graph && ctx.panels.length === 1, h0 = S.h[0];
      const mats = single ? [{ get: (k) => ctx.panels[0].m.val(h0, (k / lk) | 0, k % lk) }] : ctx.panels.filter((x) => !x.diff).map((x) => x.m.matrix(S.h));
      if (!mats[0]) { p.text('This graph is too large for the matrix view: use the graph view.', 20, 30); HIT = null; return; }
      const gap = 16, left = 90, top = 70, pw = (p.w - left * n - gap * (n - 1) - 10) / n;
      const fit = Math.max(0.05, Math.min(pw / lk, (p.h - top - 20) / lq));
      const cell = fit * S.zoom, vw = Math.min(lk, pw / cell), vh = Math.min(lq, (p.h - top - 20) / cell);
      S.px = clamp(S.px, 0, Math.max(0, lk - vw)); S.py = clamp(S.py, 0, Math.max(0, lq - vh));
      const hit = { cell, panels: [], top, lq, lk, mats };
      ctx.panels.forEach((panel, k) => {
        const x0 = k * (left + pw + gap) + left, y0 = top;
        let mat = panel.diff ? null : mats[k];
        if (panel.diff) { mat = new Float32Array(lq * lk); for (let t = 0; t < mat.length; t++) mat[t] = mats[0][t] - mats[1][t]; }
        const key = `${panel.diff ? 'd' : panel.s}/${S.e}/${S.m}/${S.h}/${S.scale}`;
        const img = heatFor(key, () => (single ? headHeat(panel.m, h0, S.scale) : heatCanvas(mat, lq, lk, S.scale, !!panel.diff)));
        p.text(panel.title + (panel.diff ? '' : ` \u00b7 ${d.name} \u00b7 head ${S.h.length === d.heads ? 'mean' : S.h.join('+')}`), x0, 14, { bold: true });
        p.text(`max ${fmt(img.max)}  (${lq}\u00d7${lk})`, x0, 30, { color: '#6b7785', size: 11 });
        p.image(img, S.px, S.py, vw, vh, x0, y0, vw * cell, vh * cell, cell < 1);  // averaged when cells are under a pixel
        p.rect(x0, y0, vw * cell, vh * cell, null, '#c5ccd6');
        const gold = ex().gold;
        if (gold && (d.kind === 'cross' || d.kind === 'alignment') && cell >= 2) {
          for (const [t, s] of gold) {
            if (t >= S.py && t < S.py + vh && s >= S.px && s < S.px + vw) p.rect(x0 + (s - S.px) * cell, y0 + (t - S.py) * cell, cell, cell, null, '#f59e0b', Math.max(1, cell / 8));
          }
        }
        if (cell >= 7) {
          const size = Math.min(11, cell - 1);
          for (let j = Math.floor(S.px); j < Math.min(lk, S.px + vw); j++) p.text(short(kl[j] || '', 14), x0 + (j - S.px + 0.5) * cell, y0 - 4, { size, angle: -Math.PI / 3 });
          for (let i = Math.floor(S.py); i < Math.min(lq, S.py + vh); i++) p.text(short(ql[i] || '', 12), x0 - 4, y0 + (i - S.py + 0.5) * cell, { size, align: 'right' });
        }
        hit.panels.push({ x0, y0, w: vw * cell, h: vh * cell, mat, diff: !!panel.diff });
      });
      HIT = hit;
    },
    locate(x, y) {
      if (!HIT || !HIT.panels) return null;
      for (const pn of HIT.panels) {
        if (x >= pn.x0 && x < pn.x0 + pn.w && y >= pn.y0 && y < pn.y0 + pn.h) {
          return { pn, i: Math.floor(S.py + (y - pn.y0) / HIT.cell), j: Math.floor(S.px + (x - pn.x0) / HIT.cell) };
        }
      }
      return null;
    },
    hover(ctx, x, y, o) {
      const at = this.locate(x, y); if (!at) return '';
      const { i, j } = at, d = mapDesc(), lk = HIT.lk;
      for (const pn of HIT.panels) o.rect(pn.x0 + (j - S.px) * HIT.cell, pn.y0 + (i - S.py) * HIT.cell, HIT.cell, HIT.cell, null, '#111', 1.5);
      const lines = [`query ${i} ${labelsOf(d, 0)[i] || ''}`, `key   ${j} ${labelsOf(d, 1)[j] || ''}`];
      const bound = S.h.length === 1 && ctx.panels[0].m.err ? ctx.panels[0].m.err(S.h[0], i) : 0;
      if (bound) lines.push(`stored on a ${Math.log2(ctx.panels[0].m.levels + 1)}-bit grid: \u00b1${fmt(bound)}`);
      HIT.panels.forEach((pn, k) => lines.push(`${ctx.panels[k].diff ? 'A\u2212B' : (ctx.panels.length > 1 ? META.sets[ctx.panels[k].s].title : 'weight')}: ${fmt(pn.mat.get ? pn.mat.get(i * lk + j) : pn.mat[i * lk + j])}`));
      return lines.join('\n');
    },
  };

  V.head = {
    info: 'Queries on the left, keys on the right; line opacity is the weight (scaled to the strongest visible link), one colour per head. Hover a token to isolate it; the wheel scrolls long inputs.',
    async prepare() { return { m: await getMap(mapDesc(), S.h) }; },
    size: (ctx, W, H) => ({ w: W, h: H }),
    draw(p, ctx, hov) {
      const d = mapDesc(), m = ctx.m, ql = labelsOf(d, 0), kl = labelsOf(d, 1), row = 17, top = 44;
      const rows = Math.max(1, Math.floor((p.h - top - 10) / row));
      S.scroll = clamp(S.scroll, 0, Math.max(0, Math.max(d.lq, d.lk) - rows));
      const lo = S.scroll, hiq = Math.min(d.lq, lo + rows), hik = Math.min(d.lk, lo + rows);
      const lw = Math.min(200, Math.max(60, ...ql.slice(lo, hiq).concat(kl.slice(lo, hik)).map((s) => p.measure(short(s, 24), 12)))) + 8;
      const xl = Math.max(20, p.w / 2 - 260 - lw), xr = Math.min(p.w - 20 - lw, p.w / 2 + 260);
      p.text(`${d.name} \u00b7 heads ${S.h.join(', ')}`, 20, 16, { bold: true });
      p.text(`tokens ${lo}\u2013${Math.max(hiq, hik) - 1} of ${Math.max(d.lq, d.lk)}`, 20, 32, { color: '#6b7785', size: 11 });
      let max = 1e-12;
      for (const h of S.h) for (let i = lo; i < hiq; i++) for (let j = lo; j < hik; j++) max = Math.max(max, m.val(h, i, j));
      for (const h of S.h) {
        for (let i = lo; i < hiq; i++) {
          if (hov && hov.side === 0 && hov.i !== i) continue;
          for (let j = lo; j < hik; j++) {
            if (hov && hov.side === 1 && hov.i !== j) continue;
            const a = m.val(h, i, j) / max;
            if (a < 0.02) continue;
            p.line(xl + lw, top + (i - lo + 0.5) * row, xr, top + (j - lo + 0.5) * row, HEADS[h % HEADS.length], 1 + 2 * a, 0.85 * a);
          }
        }
      }
      for (let i = lo; i < hiq; i++) {
        const on = hov && hov.side === 0 && hov.i === i;
        if (on) p.rect(xl, top + (i - lo) * row, lw, row, '#e0e7ff');
        p.text(short(ql[i] || '', 24), xl + lw - 4, top + (i - lo + 0.5) * row, { align: 'right', bold: on });
      }
      for (let j = lo; j < hik; j++) {
        if (hov && hov.side === 0) {
          const w = m.val(S.h[0], hov.i, j);
          p.rect(xr, top + (j - lo) * row + 2, lw * Math.min(1, w / max), row - 4, '#dbeafe');
        }
        const on = hov && hov.side === 1 && hov.i === j;
        if (on) p.rect(xr, top + (j - lo) * row, lw, row, '#e0e7ff');
        p.text(short(kl[j] || '', 24), xr + 4, top + (j - lo + 0.5) * row, { bold: on });
      }
      HIT = { xl, xr, lw, row, top, lo, hiq, hik };
    },
    pick(x, y) {
      if (!HIT || HIT.row === undefined) return null;
      const r = Math.floor((y - HIT.top) / HIT.row) + HIT.lo;
      if (x >= HIT.xl && x <= HIT.xl + HIT.lw && r >= HIT.lo && r < HIT.hiq) return { side: 0, i: r };
      if (x >= HIT.xr && x <= HIT.xr + HIT.lw && r >= HIT.lo && r < HIT.hik) return { side: 1, i: r };
      return null;
    },
    hover(ctx, x, y) {
      const hv = this.pick(x, y), key = hv ? hv.side + ':' + hv.i : '';
      if (key !== this.last) { this.last = key; paint(hv); }
      if (!hv) return '';
      const d = mapDesc(), m = ctx.m, h = S.h[0];
      if (hv.side === 1) return `key ${hv.i} ${labelsOf(d, 1)[hv.i]}\nhead ${h}: attended by the highlighted queries`;
      const row = []; for (let j = 0; j < d.lk; j++) row.push([m.val(h, hv.i, j), j]);
      row.sort((a, b) => b[0] - a[0]);
      return `query ${hv.i} ${labelsOf(d, 0)[hv.i]} (head ${h})\n` + row.slice(0, 8).map(([v, j]) => `${fmt(v)}  ${j} ${labelsOf(d, 1)[j]}`).join('\n');
    },
  };

  V.model = {
    info: 'Every layer (rows) \u00d7 head (columns) as a thumbnail, each row scaled to its maximum (the pattern shows at any length). Click one to open it in the matrix view. With compare on: the difference of the two checkpoints.',
    async prepare() { return {}; },
    size(ctx, W) {
      const e = ex(), H = Math.max(...e.maps.map((d) => d.heads));
      const t = clamp(Math.floor((W - 150) / H) - 6, 28, 84);
      return { w: Math.max(W - 2, 150 + H * (t + 6)), h: 50 + e.maps.length * (t + 6) + 10, t };
    },
    draw(p, ctx) {
      const e = ex(), { t } = this.size(ctx, p.w), diff = compareOk() && META.sets[1].examples[S.e];
      p.text(diff ? `${META.sets[0].title} \u2212 ${META.sets[1].title}` : 'model view', 10, 14, { bold: true });
      const Hmax = Math.max(...e.maps.map((d) => d.heads));
      for (let h = 0; h < Hmax; h++) p.text(`${h}`, 150 + h * (t + 6) + t / 2, 38, { align: 'center', color: '#6b7785', size: 11 });
      e.maps.forEach((d, m) => {
        const y = 50 + m * (t + 6);
        p.text(short(d.name, 22), 144, y + t / 2, { align: 'right', size: 11, bold: m === S.m });
        const other = diff && diff.maps[m] && diff.maps[m].tq === d.tq && diff.maps[m].tk === d.tk ? diff.maps[m] : null;
        const key = `thumb/${S.e}/${m}/${other ? 'd' : ''}`;
        const img = heatFor(key, () => {
          const a = thumbBytes(d), b = other ? thumbBytes(other) : null, n = d.tq * d.tk;
          const cv = document.createElement('canvas'); cv.width = d.tk * d.heads; cv.height = d.tq;
          const g = cv.getContext('2d'), im = g.createImageData(cv.width, cv.height);
          for (let h = 0; h < d.heads; h++) for (let i = 0; i < d.tq; i++) for (let j = 0; j < d.tk; j++) {
            const k = h * n + i * d.tk + j, o = (i * cv.width + h * d.tk + j) * 4;
            const c = b ? clamp(Math.round(127.5 + (a[k] - b[k]) / 2), 0, 255) * 3 : a[k] * 3, lut = b ? DIV : SEQ;
            im.data[o] = lut[c]; im.data[o + 1] = lut[c + 1]; im.data[o + 2] = lut[c + 2]; im.data[o + 3] = 255;
          }
          g.putImageData(im, 0, 0);
          return cv;
        });
        for (let h = 0; h < d.heads; h++) {
          const x = 150 + h * (t + 6);
          p.image(img, h * d.tk, 0, d.tk, d.tq, x, y, t, t, false);
          const on = m === S.m && S.h.includes(h);
          p.rect(x - 0.5, y - 0.5, t + 1, t + 1, null, on ? '#2563eb' : '#d9dee5', on ? 2 : 1);
        }
      });
      HIT = { t, maps: e.maps };
    },
    pick(x, y) {
      if (!HIT || HIT.t === undefined) return null;
      const m = Math.floor((y - 50) / (HIT.t + 6)), h = Math.floor((x - 150) / (HIT.t + 6));
      if (m < 0 || m >= HIT.maps.length || h < 0 || h >= HIT.maps[m].heads) return null;
      return { m, h };
    },
    hover(ctx, x, y, o) {
      const at = this.pick(x, y); if (!at) return '';
      o.rect(150 + at.h * (HIT.t + 6) - 1, 50 + at.m * (HIT.t + 6) - 1, HIT.t + 2, HIT.t + 2, null, '#111', 2);
      const st = ex().stats[at.m];
      return `${HIT.maps[at.m].name} head ${at.h}\n` + Object.keys(st).filter((k) => st[k][at.h] !== null).map((k) => `${k.padEnd(8)} ${fmt(st[k][at.h])}`).join('\n');
    },
    click(ctx, x, y) {
      const at = this.pick(x, y); if (!at) return;
      setState({ m: at.m, h: [at.h], v: ex().maps[at.m].graph ? 'graph' : 'matrix', zoom: 1, px: 0, py: 0 });
    },
  };

  V.stats = {
    info: 'Per-head statistics: entropy (nats), mean attention distance (tokens; patches for ViT; from the diagonal for cross attention), weight on itself and on the previous token, share on special tokens and punctuation, and AER against the gold alignment. Click a header to sort, a row to open it.',
    async prepare() { return {}; },
    rows() {
      const e = ex(), rows = [];
      e.maps.forEach((d, m) => { for (let h = 0; h < d.heads; h++) rows.push({ m, h, name: d.name, st: e.stats[m] }); });
      const cols = ['entropy', 'distance', 'self', 'prev', 'special', 'aer'].filter((c) => e.stats.some((st) => st[c] && st[c].some((v) => v !== null)));
      if (S.sort) {
        const k = S.sort, val = (r) => (k === 'layer' ? r.m * 1000 + r.h : (r.st[k] ? r.st[k][r.h] : null));
        rows.sort((a, b) => { const x = val(a), y = val(b); if (x === null) return 1; if (y === null) return -1; return (x - y) * S.dir; });
      }
      return { rows, cols };
    },
    size(ctx, W) { const { rows } = this.rows(); return { w: W - 2, h: 40 + rows.length * 20 + 10 }; },
    draw(p) {
      const { rows, cols } = this.rows(), cw = 110, x0 = 10;
      const max = {}; for (const c of cols) max[c] = Math.max(1e-12, ...rows.map((r) => (r.st[c] ? r.st[c][r.h] || 0 : 0)));
      p.rect(0, 0, p.w, 30, '#f3f5f8');
      p.text('layer \u00b7 head' + (S.sort === 'layer' ? (S.dir > 0 ? ' \u25b2' : ' \u25bc') : ''), x0, 15, { bold: true });
      cols.forEach((c, k) => p.text(c + (S.sort === c ? (S.dir > 0 ? ' \u25b2' : ' \u25bc') : ''), x0 + 200 + k * cw, 15, { bold: true }));
      rows.forEach((r, n) => {
        const y = 34 + n * 20, on = r.m === S.m && S.h.includes(r.h);
        if (on) p.rect(0, y, p.w, 20, '#e0e7ff');
        p.text(`${r.name} \u00b7 ${r.h}`, x0, y + 10);
        cols.forEach((c, k) => {
          const v = r.st[c] ? r.st[c][r.h] : null, x = x0 + 200 + k * cw;
          if (v !== null) p.rect(x, y + 4, (cw - 20) * Math.min(1, Math.max(0, v) / max[c]), 12, '#c7d7f5');
          p.text(fmt(v), x + 2, y + 10, { size: 11 });
        });
      });
      HIT = { cols, rows, cw, x0 };
    },
    click(ctx, x, y) {
      if (!HIT || !HIT.rows) return;
      if (y < 30) {
        const k = Math.floor((x - HIT.x0 - 200) / HIT.cw), col = x < HIT.x0 + 200 ? 'layer' : HIT.cols[k];
        if (!col) return;
        setState({ dir: S.sort === col ? -S.dir : -1, sort: col });
        return;
      }
      const r = HIT.rows[Math.floor((y - 34) / 20)]; if (!r) return;
      setState({ m: r.m, h: [r.h], v: ex().maps[r.m].graph ? 'graph' : 'matrix', zoom: 1, px: 0, py: 0 });
    },
    hover(ctx, x, y, o) {
      if (!HIT || !HIT.rows || y < 34) return '';
      const n = Math.floor((y - 34) / 20), r = HIT.rows[n]; if (!r) return '';
      o.rect(0, 34 + n * 20, o.w, 20, null, '#2563eb', 1);
      return `${r.name} head ${r.h}: click to open`;
    },
  };

  V.align = {
    info: 'Cross-attention (or the RNN alignment) one decoding step at a time: the bars are the weights over the source for the current target token, gold links outlined in orange; the matrix fills as it decodes (press \u25b6). Per-head AER against the gold alignment on the right.',
    async prepare() {
      if (!(mapDesc().kind === 'cross' || mapDesc().kind === 'alignment')) {
        const cm = crossMaps(); if (cm.length) { S.m = cm[cm.length - 1][1]; S.h = S.h.filter((h) => h < mapDesc().heads); if (!S.h.length) S.h = [0]; }
      }
      return { m: await getMap(mapDesc(), S.h) };
    },
    size: (ctx, W, H) => ({ w: W, h: H }),
    draw(p, ctx) {
      const d = mapDesc(), mat = ctx.m.matrix(S.h), tl = labelsOf(d, 0), sl = labelsOf(d, 1), lq = d.lq, lk = d.lk;
      S.q = clamp(S.q, 0, lq - 1);
      const t = S.q, gold = new Set((ex().gold || []).map(([a, b]) => a * 100000 + b));
      p.text(`${d.name} \u00b7 step ${t + 1}/${lq} \u00b7 heads ${S.h.join(', ')}`, 16, 14, { bold: true });
      if (ex().prediction) p.text('output: ' + short(ex().prediction, 120), 16, 32, { color: '#6b7785', size: 11 });
      let x = 16;  // the target so far
      for (let i = 0; i <= Math.min(t + 8, lq - 1); i++) {
        const s = short(tl[i] || '', 16), w = p.measure(s, 12) + 10;
        if (x + w > p.w - 200) break;
        p.rect(x, 44, w, 20, i === t ? '#2563eb' : (i < t ? '#eef2f7' : '#fff'), i > t ? '#d9dee5' : null);
        p.text(s, x + 5, 54, { color: i === t ? '#fff' : (i > t ? '#9aa5b1' : '#1f2933') });
        x += w + 4;
      }
      const bw = Math.max(3, Math.min(56, (p.w - 260) / lk)), base = 160, row = mat.subarray(t * lk, (t + 1) * lk);
      let rmax = 1e-12; for (const v of row) rmax = Math.max(rmax, v);
      for (let j = 0; j < lk; j++) {
        const bx = 16 + j * bw, h = 80 * row[j] / rmax;
        p.rect(bx + 1, base - h, bw - 2, h, rgb(SEQ, 80 + 175 * row[j] / rmax));
        if (gold.has(t * 100000 + j)) p.rect(bx + 0.5, base - 84, bw - 1, 84 + 22, null, '#f59e0b', 2);
        if (bw >= 9) p.text(short(sl[j] || '', 12), bx + bw / 2, base + 6, { size: Math.min(11, bw - 2), angle: Math.PI / 2.6 });
      }
      const top = base + 74, cell = Math.max(0.5, Math.min(bw, (p.h - top - 10) / lq));
      const key = `align/${S.e}/${S.m}/${S.h}`;
      const img = heatFor(key, () => heatCanvas(mat, lq, lk, 'max', false));
      p.image(img, 0, 0, lk, t + 1, 16, top, lk * bw, (t + 1) * cell, false);
      p.rect(16, top, lk * bw, lq * cell, null, '#c5ccd6');
      p.rect(16, top + t * cell, lk * bw, cell, null, '#2563eb', 1.5);
      if (cell >= 3) for (const g of ex().gold || []) if (g[0] <= t) p.rect(16 + g[1] * bw, top + g[0] * cell, bw, cell, null, '#f59e0b', 1.5);
      if (cell >= 7) for (let i = 0; i < lq; i++) p.text(short(tl[i] || '', 14), 20 + lk * bw, top + (i + 0.5) * cell, { size: Math.min(11, cell - 1), color: i <= t ? '#1f2933' : '#9aa5b1' });
      const st = ex().stats[S.m].aer, ax = p.w - 190;
      p.text('AER per head (argmax)', ax, 84, { bold: true });
      if (!st || st.every((v) => v === null)) p.text('no gold alignment', ax, 104, { color: '#6b7785' });
      else st.forEach((v, h) => { p.text(`head ${h}`, ax, 103 + h * 18, { size: 11, bold: S.h.includes(h) }); p.rect(ax + 52, 97 + h * 18, 80 * v, 12, S.h.includes(h) ? '#60a5fa' : '#cbd5e1'); p.text(fmt(v), ax + 136, 103 + h * 18, { size: 11 }); });
      HIT = { bw, base, top, cell, lk, lq, row };
    },
    hover(ctx, x, y) {
      if (!HIT || HIT.bw === undefined) return '';
      const j = Math.floor((x - 16) / HIT.bw);
      if (y < HIT.top && y > 60 && j >= 0 && j < HIT.lk && x < 16 + HIT.lk * HIT.bw) return `step ${S.q} ${labelsOf(mapDesc(), 0)[S.q]} \u2192 source ${j} ${labelsOf(mapDesc(), 1)[j]}\nweight ${fmt(HIT.row[j])}`;
      return '';
    },
    click(ctx, x, y) {
      if (!HIT || HIT.cell === undefined || y < HIT.top) return;
      const i = Math.floor((y - HIT.top) / HIT.cell); if (i >= 0 && i < HIT.lq && x < 16 + HIT.lk * HIT.bw) setState({ q: i });
    },
  };

  const IMAGES = new Map();
  function loadImage(src) {
    if (!IMAGES.has(src)) IMAGES.set(src, new Promise((ok, bad) => { const im = new Image(); im.onload = () => ok(im); im.onerror = bad; im.src = src; }));
    return IMAGES.get(src);
  }
  V.image = {
    info: 'ViT: the attention of the selected query (the class token by default; click a patch to pick another) over the patches, overlaid on the image; right: attention rollout (Abnar & Zuidema) for the same query.',
    async prepare() {
      const e = ex(), r = e.rollout ? await getMap(e.rollout, [0]) : null;
      return { m: await getMap(mapDesc(), S.h), img: await loadImage(e.image), r };
    },
    size: (ctx, W, H) => ({ w: W, h: H }),
    draw(p, ctx) {
      const e = ex(), d = mapDesc(), [gr, gc] = e.grid, n = gr * gc, off = d.lq - n;
      S.q = clamp(S.q, 0, d.lq - 1);
      const side = Math.max(120, Math.min((p.w - 60) / 2, p.h - 70)), panels = [['layer', ctx.m.matrix(S.h)]];
      if (ctx.r) panels.push(['rollout', ctx.r.matrix([0])]);
      const qn = S.q < off ? '[CLS]' : `patch ${S.q - off} (row ${Math.floor((S.q - off) / gc)}, col ${(S.q - off) % gc})`;
      HIT = { side, gr, gc, off, x: [], y0: 50, vals: [] };
      panels.forEach(([name, mat], k) => {
        const x0 = 20 + k * (side + 20), y0 = 50, vals = mat.subarray(S.q * d.lk + off, S.q * d.lk + off + n);
        let mx = 1e-12; for (const v of vals) mx = Math.max(mx, v);
        p.text(name === 'layer' ? `${d.name} \u00b7 heads ${S.h.join(', ')} \u00b7 query ${qn}` : `rollout \u00b7 query ${qn}`, x0, 16, { bold: true });
        p.text(`max ${fmt(mx)}`, x0, 34, { size: 11, color: '#6b7785' });
        p.image(ctx.img, 0, 0, ctx.img.width, ctx.img.height, x0, y0, side, side, true);
        const cv = document.createElement('canvas'); cv.width = gc; cv.height = gr;
        const g = cv.getContext('2d'), im = g.createImageData(gc, gr);
        for (let t = 0; t < n; t++) {
          const u = vals[t] / mx, c = Math.round(255 * u) * 3;
          im.data[4 * t] = HOT[c]; im.data[4 * t + 1] = HOT[c + 1]; im.data[4 * t + 2] = HOT[c + 2]; im.data[4 * t + 3] = Math.round(255 * (0.15 + 0.7 * u));
        }
        g.putImageData(im, 0, 0);
        p.image(cv, 0, 0, gc, gr, x0, y0, side, side, true, 0.85);
        if (S.q >= off) { const t = S.q - off; p.rect(x0 + (t % gc) * side / gc, y0 + Math.floor(t / gc) * side / gr, side / gc, side / gr, null, '#22d3ee', 2); }
        HIT.x.push(x0); HIT.vals.push(vals);
      });
    },
    pick(x, y) {
      if (!HIT || HIT.gr === undefined) return null;
      for (let k = 0; k < HIT.x.length; k++) {
        const u = (x - HIT.x[k]) / HIT.side, v = (y - HIT.y0) / HIT.side;
        if (u >= 0 && u < 1 && v >= 0 && v < 1) return { k, t: Math.floor(v * HIT.gr) * HIT.gc + Math.floor(u * HIT.gc) };
      }
      return null;
    },
    hover(ctx, x, y) { const at = this.pick(x, y); return at ? `patch ${at.t} (row ${Math.floor(at.t / HIT.gc)}, col ${at.t % HIT.gc})\n${at.k ? 'rollout' : 'weight'} ${fmt(HIT.vals[at.k][at.t])}` : ''; },
    click(ctx, x, y) { const at = this.pick(x, y); if (at) setState({ q: at.t + HIT.off }); },
  };

  V.graph = {
    info: 'The graph laid out once; edge width and colour are the attention weight (mean of the selected heads). Hover a node to see the weights of its neighbours; drag to pan, ctrl + wheel to zoom. HAN: the meta-path weights at the top left.',
    async prepare() {
      if (!mapDesc().graph) { const k = ex().maps.findIndex((d) => d.graph); if (k >= 0) S.m = k; }
      return { m: await decode(mapDesc()) };
    },
    size: (ctx, W, H) => ({ w: W, h: H }),
    draw(p, ctx, hov) {
      const e = ex(), g = ctx.m, pos = e.layout, a = g.edgeAlpha(S.h), n = g.n, pad = 30;
      const sx = (p.w - 2 * pad) * S.zoom, sy = (p.h - 2 * pad - 20) * S.zoom, ox = pad - S.px * sx, oy = pad + 20 - S.py * sy;
      const X = (i) => ox + pos[2 * i] * sx, Y = (i) => oy + pos[2 * i + 1] * sy;
      let mx = 1e-12; for (const v of a) mx = Math.max(mx, v);
      p.text(`${g.d.name} \u00b7 heads ${S.h.join(', ')} \u00b7 ${n} nodes, ${g.E} edges`, 16, 14, { bold: true });
      const order = Array.from(a.keys()).sort((u, v) => a[u] - a[v]);
      const focus = hov !== undefined && hov !== null ? new Set(g.incoming(hov)) : null;
      for (const k of order) {
        const i = g.src[k], j = g.dst[k]; if (i === j) continue;
        const u = a[k] / mx;
        if (focus && !focus.has(k)) { p.line(X(i), Y(i), X(j), Y(j), '#d9dee5', 0.5, 0.5); continue; }
        p.line(X(i), Y(i), X(j), Y(j), rgb(SEQ, 60 + 195 * u), 0.4 + 4 * u, 0.35 + 0.65 * u);
      }
      const cls = e.node_classes, r = n > 500 ? 2.5 : 5;
      for (let i = 0; i < n; i++) p.circle(X(i), Y(i), i === hov ? r + 3 : r, cls ? CLASSES[cls[i] % CLASSES.length] : '#64748b', '#fff');
      if (n <= 60) for (let i = 0; i < n; i++) p.text(short(e.labels[g.d.axes[0]][i] || '', 10), X(i) + r + 2, Y(i), { size: 10, color: '#475569' });
      if (e.metapath_weights) {
        const w = e.metapath_weights, names = e.metapaths || w.map((_, k) => 'meta-path ' + k), bx = 16, by = 30;
        p.rect(bx, by, 220, 22 + 18 * w.length, 'rgba(255,255,255,0.92)', '#d9dee5');
        p.text('meta-path attention \u03b2', bx + 8, by + 11, { bold: true, size: 11 });
        w.forEach((v, k) => { p.rect(bx + 8, by + 22 + 18 * k, 120 * v / Math.max(...w), 13, k === S.m ? '#2563eb' : '#93c5fd'); p.text(`${short(names[k], 14)} ${v.toFixed(3)}`, bx + 132, by + 28 + 18 * k, { size: 11 }); });
      }
      HIT = { X, Y, n, r };
    },
    pick(x, y) {
      if (!HIT || HIT.X === undefined) return null;
      let best = null, bd = Math.max(8, HIT.r + 3) ** 2;
      for (let i = 0; i < HIT.n; i++) { const dd = (HIT.X(i) - x) ** 2 + (HIT.Y(i) - y) ** 2; if (dd < bd) { bd = dd; best = i; } }
      return best;
    },
    hover(ctx, x, y) {
      const i = this.pick(x, y);
      if (i !== this.last) { this.last = i; paint(i); }
      if (i === null) return '';
      const g = ctx.m, a = g.edgeAlpha(S.h), lab = ex().labels[g.d.axes[0]];
      const nb = Array.from(g.incoming(i)).map((k) => [a[k], g.src[k]]).sort((u, v) => v[0] - u[0]);
      return `node ${i} ${lab[i] || ''}${ex().node_classes ? ' (class ' + ex().node_classes[i] + ')' : ''}\n${nb.length} neighbours:\n` + nb.slice(0, 12).map(([v, j]) => `${fmt(v)}  ${j} ${lab[j] || ''}`).join('\n');
    },
  };

  // ---------- rendering ----------
  const stage = $('stage'), canvas = $('view'), over = $('overlay');
  let CTX = null, seq = 0;
  function paint(hov) {
    const view = V[S.v], W = stage.clientWidth, H = stage.clientHeight, sz = view.size(CTX, W, H);
    const p = new CanvasPainter(canvas, sz.w, sz.h);
    view.draw(p, CTX, hov);
    const o = new CanvasPainter(over, sz.w, sz.h); o.c.clearRect(0, 0, sz.w, sz.h);
    return p;
  }
  async function render() {
    const my = ++seq, t0 = performance.now();
    syncControls();
    const ctx = await V[S.v].prepare();
    if (my !== seq) return;
    const t1 = performance.now();
    syncControls();
    CTX = ctx; V[S.v].last = undefined;
    paint();
    writeHash();
    const t2 = performance.now();
    API.timings = { prepare: t1 - t0, paint: t2 - t1 };
    API.lastRenderMs = t2 - t0;
    prefetch();
  }
  function prefetch() {
    const e = ex(), near = [S.m + 1, S.m - 1].filter((m) => m >= 0 && m < e.maps.length);
    const heads = S.h.slice(), d = mapDesc();
    // idle work, one blob at a time: the neighbouring layers' selected heads, then this layer's other heads
    const jobs = near.map((m) => [e.maps[m], heads.filter((h) => h < e.maps[m].heads)]);
    if (!d.graph) for (let h = 0; h < d.heads; h++) jobs.push([d, [h]]);
    const my = seq;
    const next = () => { if (my !== seq || !jobs.length) return; const [dd, hh] = jobs.shift(); getMap(dd, hh).then(() => setTimeout(next, 0)); };
    setTimeout(next, 30);
  }
  function setState(patch) {
    const before = S.e + '/' + S.s;
    Object.assign(S, patch);
    if (S.e + '/' + S.s !== before) { S.m = clamp(S.m, 0, ex().maps.length - 1); if (!viewsFor(ex()).includes(S.v)) S.v = defaultView(ex()); }
    S.h = S.h.filter((h) => h < mapDesc().heads); if (!S.h.length) S.h = [0];
    $('tip').textContent = '\u00a0';
    return render();
  }

  // ---------- controls ----------
  function syncControls() {
    const e = ex(), views = viewsFor(e);
    const sel = $('example');
    if (sel.options.length !== META.sets[S.s].examples.length) {
      sel.innerHTML = '';
      META.sets[S.s].examples.forEach((x, k) => { const o = document.createElement('option'); o.value = k; o.textContent = short(`${k}: ${x.title || x.model_type}`, 60); sel.appendChild(o); });
    }
    sel.value = S.e;
    $('g-example').hidden = META.sets[S.s].examples.length < 2 && !META.serve;
    const vb = $('views');
    if (vb.dataset.key !== views.join()) {
      vb.innerHTML = ''; vb.dataset.key = views.join();
      views.forEach((v, k) => { const b = document.createElement('button'); b.textContent = v; b.dataset.view = v; b.title = `${v} view (${k + 1})`; b.onclick = () => setState({ v, zoom: 1, px: 0, py: 0 }); vb.appendChild(b); });
    }
    for (const b of vb.children) b.classList.toggle('on', b.dataset.view === S.v);
    const ms = $('map');
    if (ms.dataset.key !== S.s + '/' + S.e + '/' + e.maps.length) {
      ms.innerHTML = ''; ms.dataset.key = S.s + '/' + S.e + '/' + e.maps.length;
      e.maps.forEach((d, k) => { const o = document.createElement('option'); o.value = k; o.textContent = d.name; ms.appendChild(o); });
    }
    ms.value = S.m;
    $('g-map').hidden = S.v === 'model' || S.v === 'stats';
    const hs = $('heads'), H = mapDesc().heads;
    if (hs.dataset.key !== String(H)) {
      hs.dataset.key = String(H); hs.innerHTML = '<label>heads</label>';
      for (let h = 0; h < H; h++) {
        const b = document.createElement('button'); b.className = 'chip'; b.textContent = h; b.dataset.head = h; b.title = 'click: this head; shift + click: add or remove';
        b.onclick = (ev) => {
          let hs2 = ev.shiftKey ? (S.h.includes(h) ? S.h.filter((x) => x !== h) : S.h.concat([h]).sort((a, b2) => a - b2)) : [h];
          if (!hs2.length) hs2 = [h];
          setState({ h: hs2 });
        };
        hs.appendChild(b);
      }
      const all = document.createElement('button'); all.className = 'chip'; all.textContent = 'all'; all.dataset.head = 'all';
      all.onclick = () => setState({ h: Array.from({ length: mapDesc().heads }, (_, k) => k) }); hs.appendChild(all);
    }
    for (const b of hs.querySelectorAll('button')) {
      if (b.dataset.head === 'all') b.classList.toggle('on', S.h.length === H && H > 1);
      else b.classList.toggle('on', S.h.includes(+b.dataset.head));
      if (b.dataset.head !== 'all' && S.v === 'head') b.style.color = S.h.includes(+b.dataset.head) ? '#fff' : HEADS[+b.dataset.head % HEADS.length];
      else if (b.dataset.head !== 'all') b.style.color = '';
    }
    $('heads').hidden = S.v === 'model' || S.v === 'stats';
    $('g-step').hidden = S.v !== 'align';
    if (S.v === 'align') { const st = $('step'); st.max = mapDesc().lq - 1; st.value = S.q; }
    $('g-scale').hidden = S.v !== 'matrix';
    $('scale').value = S.scale;
    $('g-compare').hidden = META.sets.length < 2;
    $('compare').classList.toggle('on', !!S.c);
    $('g-zoom').hidden = !(S.v === 'matrix' || S.v === 'graph');
    $('info').textContent = V[S.v].info + (S.c && META.sets.length > 1 && !compareOk() && (S.v === 'matrix' || S.v === 'model') ? ' (compare: the second checkpoint\u2019s map has another shape here)' : '');
  }
  $('example').onchange = (ev) => setState({ e: +ev.target.value, q: 0, zoom: 1, px: 0, py: 0, scroll: 0 });
  $('map').onchange = (ev) => setState({ m: +ev.target.value });
  $('scale').onchange = (ev) => setState({ scale: ev.target.value });
  $('compare').onclick = () => setState({ c: S.c ? 0 : 1 });
  $('step').oninput = (ev) => setState({ q: +ev.target.value });
  let timer = null;
  $('play').onclick = () => {
    if (timer) { clearInterval(timer); timer = null; return; }
    if (S.q >= mapDesc().lq - 1) S.q = -1;
    timer = setInterval(() => { if (S.v !== 'align' || S.q >= mapDesc().lq - 1) { clearInterval(timer); timer = null; return; } setState({ q: S.q + 1 }); }, 350);
  };
  const zoomBy = (f) => setState({ zoom: clamp(S.zoom * f, 1, 64) });
  $('zoom-in').onclick = () => zoomBy(1.5);
  $('zoom-out').onclick = () => zoomBy(1 / 1.5);
  $('zoom-fit').onclick = () => setState({ zoom: 1, px: 0, py: 0 });

  function hoverAt(x, y) {
    const view = V[S.v]; if (!CTX || !view.hover) return '';
    const o = new CanvasPainter(over, parseFloat(canvas.style.width), parseFloat(canvas.style.height)); o.c.clearRect(0, 0, o.w, o.h);
    const text = view.hover(CTX, x, y, o) || '';
    $('tip').textContent = text || '\u00a0';
    return text;
  }
  const local = (ev) => { const r = canvas.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; };
  let drag = null;
  stage.addEventListener('mousemove', (ev) => {
    if (drag) {
      const d = mapDesc(), graph = S.v !== 'matrix', cell = !graph && HIT && HIT.cell ? HIT.cell : 1;
      S.px = drag.px - (ev.clientX - drag.x) / (graph ? canvas.clientWidth * S.zoom : cell);
      S.py = drag.py - (ev.clientY - drag.y) / (graph ? canvas.clientHeight * S.zoom : cell);
      if (S.v === 'matrix') { S.px = clamp(S.px, 0, d.lk); S.py = clamp(S.py, 0, d.lq); }
      drag.moved = true; paint(); return;
    }
    hoverAt(...local(ev));
  });
  stage.addEventListener('mouseleave', () => { if (CTX) hoverAt(-1, -1); });
  stage.addEventListener('mousedown', (ev) => { if (S.v === 'matrix' || S.v === 'graph') drag = { x: ev.clientX, y: ev.clientY, px: S.px, py: S.py, moved: false }; });
  window.addEventListener('mouseup', (ev) => {
    const was = drag; drag = null;
    if (was && was.moved) { writeHash(); return; }
    if (ev.target === stage || ev.target === canvas || ev.target === over) { const v = V[S.v]; if (v.click && CTX) v.click(CTX, ...local(ev)); }
  });
  stage.addEventListener('wheel', (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && (S.v === 'matrix' || S.v === 'graph')) { ev.preventDefault(); zoomBy(ev.deltaY < 0 ? 1.25 : 0.8); return; }
    if (S.v === 'head') { ev.preventDefault(); S.scroll += Math.sign(ev.deltaY) * 3; paint(); return; }
    if (S.v === 'matrix' && S.zoom > 1) { ev.preventDefault(); S.py += Math.sign(ev.deltaY) * 5 / (HIT && HIT.cell ? HIT.cell / 10 : 1); S.px += Math.sign(ev.deltaX) * 5; paint(); }
  }, { passive: false });
  window.addEventListener('keydown', (ev) => {
    if (ev.target.tagName === 'TEXTAREA' || ev.target.tagName === 'INPUT' || ev.target.tagName === 'SELECT') return;
    const e = ex(), views = viewsFor(e);
    if (ev.key === 'ArrowDown') setState({ m: Math.min(e.maps.length - 1, S.m + 1) });
    else if (ev.key === 'ArrowUp') setState({ m: Math.max(0, S.m - 1) });
    else if (ev.key === 'ArrowRight') setState({ h: [Math.min(mapDesc().heads - 1, S.h[0] + 1)] });
    else if (ev.key === 'ArrowLeft') setState({ h: [Math.max(0, S.h[0] - 1)] });
    else if (/^[1-9]$/.test(ev.key) && views[+ev.key - 1]) setState({ v: views[+ev.key - 1] });
    else return;
    ev.preventDefault();
  });
  window.addEventListener('hashchange', () => { readHash(); render(); });
  let resizeTimer = null;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => CTX && paint(), 60); });

  // ---------- export ----------
  function exportName(ext) { return `attnlab-${S.v}-${(mapDesc().name || '').replace(/[^\w.-]+/g, '_')}-h${S.h.join('_')}.${ext}`; }
  function exportSVG() {
    const w = parseFloat(canvas.style.width), h = parseFloat(canvas.style.height), p = new SvgPainter(w, h);
    const saved = HIT; V[S.v].draw(p, CTX); HIT = saved;
    return p.svg();
  }
  function exportPNG() { return canvas.toDataURL('image/png'); }
  function download(url, name) { const a = document.createElement('a'); a.href = url; a.download = name; document.body.appendChild(a); a.click(); a.remove(); }
  $('png').onclick = () => canvas.toBlob((b) => { const u = URL.createObjectURL(b); download(u, exportName('png')); setTimeout(() => URL.revokeObjectURL(u), 5000); }, 'image/png');
  $('svg').onclick = () => { const u = URL.createObjectURL(new Blob([exportSVG()], { type: 'image/svg+xml' })); download(u, exportName('svg')); setTimeout(() => URL.revokeObjectURL(u), 5000); };

  // ---------- serve mode: live inference ----------
  function setupServe() {
    const cfg = META.serve; if (!cfg) return;
    const box = $('serve'); box.hidden = false;
    const input = cfg.input_kind === 'image' ? Object.assign(document.createElement('input'), { type: 'file', accept: 'image/*', id: 'serve-input' })
      : Object.assign(document.createElement('textarea'), { id: 'serve-input', placeholder: cfg.input_kind === 'graph' ? 'graph input (JSON)' : `type a sentence (at most ${cfg.max_text_chars} characters)`, maxLength: cfg.max_text_chars });
    const go = Object.assign(document.createElement('button'), { id: 'serve-go', textContent: 'explain' });
    box.append(input, go);
    go.onclick = async () => {
      $('error').textContent = '';
      let body, type;
      if (cfg.input_kind === 'image') {
        const f = input.files[0]; if (!f) { $('error').textContent = 'choose an image first'; return; }
        if (f.size > cfg.max_image_bytes) { $('error').textContent = `image too large: ${f.size} bytes, at most ${cfg.max_image_bytes}`; return; }
        body = f; type = f.type || 'application/octet-stream';
      } else {
        if (!input.value.trim()) { $('error').textContent = 'type some text first: the text must be a non-empty string'; return; }
        body = JSON.stringify(cfg.input_kind === 'graph' ? { graph: input.value } : { text: input.value }); type = 'application/json';
      }
      go.disabled = true;
      try {
        const r = await fetch('api/explain', { method: 'POST', headers: { 'Content-Type': type }, body });
        const js = await r.json();
        if (!r.ok) { $('error').textContent = js.error || `error ${r.status}`; return; }
        Object.assign(BLOBS, js.blobs);
        const list = META.sets[0].examples, first = list.length;
        js.examples.forEach((x) => list.push(x));
        $('example').innerHTML = '';
        await setState({ e: first, s: 0, q: 0, zoom: 1, px: 0, py: 0, scroll: 0, v: defaultView(js.examples[0]) });
      } catch (err) { $('error').textContent = 'request failed: ' + err.message; } finally { go.disabled = false; }
    };
  }

  // ---------- start ----------
  const API = {
    state: S, meta: META, setState, hoverAt, exportSVG, exportPNG, lastRenderMs: 0,
    // where the current view drew things (canvas pixels), for scripts that point at them
    geometry: () => {
      if (!HIT) return null;
      const g = { view: S.v, px: S.px, py: S.py };
      for (const [k, v] of Object.entries(HIT)) if (typeof v === 'number' || (Array.isArray(v) && typeof v[0] === 'number')) g[k] = v;
      if (HIT.panels) g.panels = HIT.panels.map((pn) => ({ x0: pn.x0, y0: pn.y0, w: pn.w, h: pn.h }));
      if (HIT.X) g.nodes = Array.from({ length: HIT.n }, (_, i) => [HIT.X(i), HIT.Y(i)]);
      return g;
    },
    value: async (s, e, m, h, i, j) => (await getMap(META.sets[s].examples[e].maps[m], [h])).val(h, i, j),
  };
  window.attnlab = API;
  setupServe();
  const markReady = () => { API.readyMs = performance.now(); document.body.dataset.ready = '1'; };
  if (!META.sets[0].examples.length) {  // a server started without examples: wait for the first input
    for (const id of ['g-example', 'g-map', 'heads', 'g-step', 'g-scale', 'g-compare', 'g-zoom']) $(id).hidden = true;
    $('info').textContent = 'Type an input above and press explain.';
    API.ready = Promise.resolve().then(markReady);
  } else {
    readHash();
    API.ready = render().then(markReady);
  }
})();

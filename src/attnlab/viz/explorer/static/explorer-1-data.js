// attnlab explorer, part 1: the data. META (JSON) describes sets -> examples -> maps; each map's
// attention is deflated base64 (uint8 per-row-scaled per head for tokens, uint16 for graph edges),
// inflated by the browser's DecompressionStream on first use. The state and the URL hash.
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


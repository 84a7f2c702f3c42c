// attnlab explorer, part 3: the token views (matrix, head, model, stats, align). Each view:
// async prepare() -> ctx; size(ctx, W, H); draw(painter, ctx, hover); hover(ctx, x, y, overlay) -> text; click.
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
            if (t >= S.py && t < S.py + vh && s >= S.px && s < S.px + vw) p.rect(x0 + (s - S.px) * cell, y0 + (t - S.py) * cell, cell, cell, null, '#f59e0b', Math.min(3, Math.max(1, cell / 8)));
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
    info: 'Queries on the left, keys on the right; line opacity is the weight (scaled to the strongest visible link), one colour per head. Hover a token to isolate it; the wheel scrolls long inputs. With compare on: both checkpoints side by side.',
    async prepare() { return { m: await getMap(mapDesc(), S.h), m2: compareOk() ? await getMap(mapDesc(1), S.h) : null }; },
    size: (ctx, W, H) => ({ w: W, h: H }),
    draw(p, ctx, hov) {  // with compare on: both checkpoints side by side, the same tokens highlighted
      const panels = ctx.m2 ? [[ctx.m, 0], [ctx.m2, 1]] : [[ctx.m, 0]], pw = p.w / panels.length;
      const cols = panels.map(([m, set]) => this.column(p, m, set, set * pw, pw, hov, panels.length > 1));
      HIT = Object.assign({ cols }, cols[0]);
    },
    column(p, m, set, x0, pw, hov, titled) {
      const d = mapDesc(), ql = labelsOf(d, 0), kl = labelsOf(d, 1), row = 17, top = 44;
      const rows = Math.max(1, Math.floor((p.h - top - 10) / row));
      S.scroll = clamp(S.scroll, 0, Math.max(0, Math.max(d.lq, d.lk) - rows));
      const lo = S.scroll, hiq = Math.min(d.lq, lo + rows), hik = Math.min(d.lk, lo + rows);
      const lw = Math.min(200, Math.max(60, ...ql.slice(lo, hiq).concat(kl.slice(lo, hik)).map((s) => p.measure(short(s, 24), 12)))) + 8;
      const xl = x0 + Math.max(20, pw / 2 - 260 - lw), xr = x0 + Math.min(pw - 20 - lw, pw / 2 + 260);
      p.text(`${titled ? META.sets[set].title + ' \u00b7 ' : ''}${d.name} \u00b7 heads ${S.h.join(', ')}`, x0 + 20, 16, { bold: true });
      p.text(`tokens ${lo}\u2013${Math.max(hiq, hik) - 1} of ${Math.max(d.lq, d.lk)}`, x0 + 20, 32, { color: '#6b7785', size: 11 });
      let max = 1e-12;
      for (const h of S.h) for (let i = lo; i < hiq; i++) for (let j = lo; j < hik; j++) max = Math.max(max, m.val(h, i, j));
      for (const h of S.h) {
        const buckets = Array.from({ length: 16 }, () => []);  // lines of similar weight drawn as one path
        for (let i = lo; i < hiq; i++) {
          if (hov && hov.side === 0 && hov.i !== i) continue;
          for (let j = lo; j < hik; j++) {
            if (hov && hov.side === 1 && hov.i !== j) continue;
            const a = m.val(h, i, j) / max;
            if (a < 0.02) continue;
            buckets[Math.min(15, (a * 16) | 0)].push(xl + lw, top + (i - lo + 0.5) * row, xr, top + (j - lo + 0.5) * row);
          }
        }
        buckets.forEach((segs, b) => { const a = (b + 0.5) / 16; if (segs.length) p.lines(segs, HEADS[h % HEADS.length], 1 + 2 * a, 0.85 * a); });
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
      return { xl, xr, lw, row, top, lo, hiq, hik };
    },
    pick(x, y) {
      if (!HIT || !HIT.cols) return null;
      for (const c of HIT.cols) {
        const r = Math.floor((y - c.top) / c.row) + c.lo;
        if (x >= c.xl && x <= c.xl + c.lw && r >= c.lo && r < c.hiq) return { side: 0, i: r };
        if (x >= c.xr && x <= c.xr + c.lw && r >= c.lo && r < c.hik) return { side: 1, i: r };
      }
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
    size: (ctx, W, H) => ({ w: W, h: H }),
    draw(p) {
      const all = this.rows(), cols = all.cols, cw = 110, x0 = 10, fit = Math.max(1, Math.floor((p.h - 40) / 20));
      const max = {}; for (const c of cols) max[c] = Math.max(1e-12, ...all.rows.map((r) => (r.st[c] ? r.st[c][r.h] || 0 : 0)));
      S.srow = clamp(S.srow || 0, 0, Math.max(0, all.rows.length - fit));
      const rows = all.rows.slice(S.srow, S.srow + fit);  // only what fits: the wheel scrolls
      p.rect(0, 0, p.w, 30, '#f3f5f8');
      p.text('layer \u00b7 head' + (S.sort === 'layer' ? (S.dir > 0 ? ' \u25b2' : ' \u25bc') : ''), x0, 15, { bold: true });
      cols.forEach((c, k) => p.text(c + (S.sort === c ? (S.dir > 0 ? ' \u25b2' : ' \u25bc') : ''), x0 + 200 + k * cw, 15, { bold: true }));
      if (all.rows.length > fit) p.text(`rows ${S.srow + 1}\u2013${S.srow + rows.length} of ${all.rows.length} (wheel scrolls)`, p.w - 10, 15, { align: 'right', size: 11, color: '#6b7785' });
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
    info: 'Cross-attention (or the RNN alignment) one decoding step at a time: the bars are the weights over the source for the current target token, gold links outlined in orange; the matrix fills as it decodes (press \u25b6). Per-head AER against the gold alignment on the right. With compare on: both checkpoints side by side.',
    async prepare() {
      if (!(mapDesc().kind === 'cross' || mapDesc().kind === 'alignment')) {
        const cm = crossMaps(); if (cm.length) { S.m = cm[cm.length - 1][1]; S.h = S.h.filter((h) => h < mapDesc().heads); if (!S.h.length) S.h = [0]; }
      }
      return { m: await getMap(mapDesc(), S.h), m2: compareOk() ? await getMap(mapDesc(1), S.h) : null };
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
      // one panel per checkpoint: bars over the source for step t, the matrix filling row by row
      const both = ctx.m2 ? [[ctx.m, 0], [ctx.m2, 1]] : [[ctx.m, 0]];
      const bw = Math.max(3, Math.min(56, (p.w - 260 - (both.length - 1) * 100) / (lk * both.length))), base = 160;
      const top = base + 74, cell = Math.max(0.5, Math.min(bw, (p.h - top - 10) / lq)), rows = [];
      for (const [m, set] of both) {
        const x0 = 16 + set * (lk * bw + 100), pm = set ? m.matrix(S.h) : mat, row = pm.subarray(t * lk, (t + 1) * lk);
        rows.push(row);
        if (ctx.m2) p.text(META.sets[set].title, x0, 74, { bold: true, size: 11, color: '#475569' });
        let rmax = 1e-12; for (const v of row) rmax = Math.max(rmax, v);
        for (let j = 0; j < lk; j++) {
          const bx = x0 + j * bw, h = 70 * row[j] / rmax;
          p.rect(bx + 1, base - h, bw - 2, h, rgb(SEQ, 80 + 175 * row[j] / rmax));
          if (gold.has(t * 100000 + j)) p.rect(bx + 0.5, base - 74, bw - 1, 74 + 22, null, '#f59e0b', 2);
          if (bw >= 9) p.text(short(sl[j] || '', 12), bx + bw / 2, base + 6, { size: Math.min(11, bw - 2), angle: Math.PI / 2.6 });
        }
        const img = heatFor(`align/${set}/${S.e}/${S.m}/${S.h}`, () => heatCanvas(pm, lq, lk, 'max', false));
        p.image(img, 0, 0, lk, t + 1, x0, top, lk * bw, (t + 1) * cell, false);
        p.rect(x0, top, lk * bw, lq * cell, null, '#c5ccd6');
        p.rect(x0, top + t * cell, lk * bw, cell, null, '#2563eb', 1.5);
        if (cell >= 3) for (const g of ex().gold || []) if (g[0] <= t) p.rect(x0 + g[1] * bw, top + g[0] * cell, bw, cell, null, '#f59e0b', 1.5);
        if (cell >= 7) for (let i = 0; i < lq; i++) p.text(short(tl[i] || '', 14), x0 + 4 + lk * bw, top + (i + 0.5) * cell, { size: Math.min(11, cell - 1), color: i <= t ? '#1f2933' : '#9aa5b1' });
      }
      const row = rows[0], ax = p.w - 190;
      let ay = 84;
      for (const [, set] of both) {
        const st = META.sets[set].examples[S.e].stats[S.m].aer;
        p.text(ctx.m2 ? `AER per head, ${short(META.sets[set].title, 12)}` : 'AER per head (argmax)', ax, ay, { bold: true });
        if (!st || st.every((v) => v === null)) { p.text('no gold alignment', ax, ay + 20, { color: '#6b7785' }); ay += 50; continue; }
        st.forEach((v, h) => { p.text(`head ${h}`, ax, ay + 19 + h * 18, { size: 11, bold: S.h.includes(h) }); p.rect(ax + 52, ay + 13 + h * 18, 80 * v, 12, S.h.includes(h) ? '#60a5fa' : '#cbd5e1'); p.text(fmt(v), ax + 136, ay + 19 + h * 18, { size: 11 }); });
        ay += 40 + st.length * 18;
      }
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


// attnlab explorer, part 4: the ViT image view (overlay + rollout) and the graph view (GAT, HAN).
  const IMAGES = new Map();
  function loadImage(src) {
    if (!IMAGES.has(src)) IMAGES.set(src, new Promise((ok, bad) => { const im = new Image(); im.onload = () => ok(im); im.onerror = bad; im.src = src; }));
    return IMAGES.get(src);
  }
  V.image = {
    info: 'ViT: the attention of the selected query (the class token by default; click a patch to pick another) over the patches, overlaid on the image (colour and opacity from the smallest to the largest weight shown); right: attention rollout (Abnar & Zuidema) for the same query.',
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
        let mx = 1e-12, mn = Infinity; for (const v of vals) { mx = Math.max(mx, v); mn = Math.min(mn, v); }
        const span = Math.max(mx - mn, 1e-12);  // colours span the shown weights' min to max
        p.text(name === 'layer' ? `${d.name} \u00b7 heads ${S.h.join(', ')} \u00b7 query ${qn}` : `rollout \u00b7 query ${qn}`, x0, 16, { bold: true });
        p.text(`min ${fmt(mn)} \u2192 max ${fmt(mx)} over the patches`, x0, 34, { size: 11, color: '#6b7785' });
        p.image(ctx.img, 0, 0, ctx.img.width, ctx.img.height, x0, y0, side, side, ctx.img.width * 4 > side);  // tiny images stay crisp
        const cv = document.createElement('canvas'); cv.width = gc; cv.height = gr;
        const g = cv.getContext('2d'), im = g.createImageData(gc, gr);
        for (let t = 0; t < n; t++) {
          const u = (vals[t] - mn) / span, c = Math.round(255 * u) * 3;
          im.data[4 * t] = HOT[c]; im.data[4 * t + 1] = HOT[c + 1]; im.data[4 * t + 2] = HOT[c + 2]; im.data[4 * t + 3] = Math.round(255 * (0.1 + 0.55 * u));
        }
        g.putImageData(im, 0, 0);
        p.image(cv, 0, 0, gc, gr, x0, y0, side, side, true);
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
      const focus = hov !== undefined && hov !== null ? new Set(g.incoming(hov)) : null;
      const faded = [], buckets = Array.from({ length: 32 }, () => []);  // edges of similar weight: one path each, light first
      for (let k = 0; k < g.E; k++) {
        const i = g.src[k], j = g.dst[k]; if (i === j) continue;
        if (focus && !focus.has(k)) faded.push(X(i), Y(i), X(j), Y(j));
        else buckets[Math.min(31, (a[k] / mx * 32) | 0)].push(X(i), Y(i), X(j), Y(j));
      }
      if (faded.length) p.lines(faded, '#d9dee5', 0.5, 0.5);
      buckets.forEach((segs, b) => { const u = (b + 0.5) / 32; if (segs.length) p.lines(segs, rgb(SEQ, 60 + 195 * u), 0.4 + 4 * u, 0.35 + 0.65 * u); });
      const cls = e.node_classes, r = n > 500 ? 2.5 : 5;
      for (let i = 0; i < n; i++) p.circle(X(i), Y(i), i === hov ? r + 3 : r, cls ? CLASSES[cls[i] % CLASSES.length] : '#64748b', '#fff');
      if (n <= 60) for (let i = 0; i < n; i++) p.text(short(e.labels[g.d.axes[0]][i] || '', 10), X(i) + r + 2, Y(i), { size: 10, color: '#475569' });
      if (e.metapath_weights) {
        const w = e.metapath_weights, names = e.metapaths || w.map((_, k) => 'meta-path ' + k), bx = 16, by = 30;
        p.rect(bx, by, 330, 22 + 18 * w.length, 'rgba(255,255,255,0.92)', '#d9dee5');
        p.text('meta-path attention \u03b2', bx + 8, by + 11, { bold: true, size: 11 });
        w.forEach((v, k) => { p.rect(bx + 8, by + 22 + 18 * k, 120 * v / Math.max(...w), 13, k === S.m ? '#2563eb' : '#93c5fd'); p.text(`${short(names[k], 30)} ${v.toFixed(3)}`, bx + 132, by + 28 + 18 * k, { size: 11 }); });
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
      const e = ex(), cls = e.node_classes ? e.node_classes[i] : null, name = (k) => (e.class_names && e.class_names[k] !== undefined ? e.class_names[k] : k);
      return `node ${i} ${lab[i] || ''}${cls !== null ? ' (class ' + name(cls) + ')' : ''}${e.node_predictions ? '\npredicted: ' + e.node_predictions[i] : ''}\n${nb.length} neighbours:\n` + nb.slice(0, 12).map(([v, j]) => `${fmt(v)}  ${j} ${lab[j] || ''}`).join('\n');
    },
  };


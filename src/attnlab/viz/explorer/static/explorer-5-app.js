// attnlab explorer, part 5: rendering, controls, export, serve mode and start.
  // ---------- rendering ----------
  const stage = $('stage'), canvas = $('view'), over = $('overlay');
  let CTX = null, OVER = null, seq = 0;
  function paint(hov) {
    const view = V[S.v], W = stage.clientWidth, H = stage.clientHeight, sz = view.size(CTX, W, H);
    const p = new CanvasPainter(canvas, sz.w, sz.h);
    view.draw(p, CTX, hov);
    OVER = new CanvasPainter(over, sz.w, sz.h); OVER.c.clearRect(0, 0, sz.w, sz.h);  // sized once per paint
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
    $('info').textContent = V[S.v].info + (S.c && META.sets.length > 1 && !compareOk() && ['matrix', 'model', 'align', 'head'].includes(S.v) ? ' (compare: the second checkpoint\u2019s map has another shape here)' : '');
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
    const o = OVER; o.c.clearRect(0, 0, o.w, o.h);  // hover repaints only the transparent overlay
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
    if (S.v === 'stats') { ev.preventDefault(); S.srow = (S.srow || 0) + Math.sign(ev.deltaY) * 3; paint(); return; }
    if (S.v === 'matrix' && S.zoom > 1 && HIT && HIT.cell) { ev.preventDefault(); S.py += ev.deltaY / HIT.cell; S.px += ev.deltaX / HIT.cell; paint(); }
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
        // the run's token, from the URL the command printed (the server refuses the API without it)
        const token = new URLSearchParams(location.search).get('token') || '';
        const r = await fetch('api/explain', { method: 'POST', headers: { 'Content-Type': type, 'X-Attnlab-Token': token }, body });
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
    // a checksum of the pixels shown and how many are not white (cheap "did the picture change")
    fingerprint: () => {
      const copy = document.createElement('canvas'); copy.width = canvas.width; copy.height = canvas.height;
      const g = copy.getContext('2d', { willReadFrequently: true }); g.drawImage(canvas, 0, 0);
      const d = g.getImageData(0, 0, copy.width, copy.height).data;
      let h = 2166136261, ink = 0;
      for (let k = 0; k < d.length; k += 4) {
        const v = d[k] | (d[k + 1] << 8) | (d[k + 2] << 16);
        if (v !== 0xffffff) ink++;
        h = Math.imul(h ^ v, 16777619);
      }
      return { hash: (h >>> 0).toString(16), ink };
    },
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

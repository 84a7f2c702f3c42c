// attnlab explorer, part 2: drawing. Every view draws through a Painter, so the same code renders
// the canvas and the SVG export; heat images are built pixel by pixel from the decoded weights.
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
    lines(segs, color, lw, alpha) {  // segs: x1, y1, x2, y2, x1, ... one stroke for all
      const c = this.c; c.globalAlpha = alpha; c.strokeStyle = color; c.lineWidth = lw; c.beginPath();
      for (let k = 0; k < segs.length; k += 4) { c.moveTo(segs[k], segs[k + 1]); c.lineTo(segs[k + 2], segs[k + 3]); }
      c.stroke(); c.globalAlpha = 1;
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
    lines(segs, color, lw, alpha) {
      const d = []; for (let k = 0; k < segs.length; k += 4) d.push(`M${segs[k].toFixed(1)} ${segs[k + 1].toFixed(1)}L${segs[k + 2].toFixed(1)} ${segs[k + 3].toFixed(1)}`);
      this.out.push(`<path d="${d.join('')}" fill="none" stroke="${color}" stroke-width="${lw.toFixed(2)}" stroke-opacity="${alpha.toFixed(3)}"/>`);
    }
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


  // attnlab explorer, part 6: the attribution view (only when the page carries META.attribution,
  // which attnlab.explore(..., explain=True) adds): the faithfulness table, each prediction's
  // input coloured by the chosen method, and the head-importance grid (click a head: its attention).
  {
    const A = META.attribution;
    const aside = document.querySelector('aside');
    if (A && aside) {
      const el = (tag, props = {}, text = '') => { const n = document.createElement(tag); Object.assign(n, props); n.textContent = text; return n; };
      const style = el('style', {}, `#faithfulness { border-collapse: collapse; font-size: 11px; }
        #faithfulness td, #faithfulness th { padding: 1px 4px; text-align: right; }
        #faithfulness td:first-child, #faithfulness th:first-child { text-align: left; }
        .attr-unit { display: inline-block; margin: 1px; padding: 0 2px; border-radius: 2px; white-space: pre; font-size: 11px; }
        .attr-head { display: inline-block; width: 14px; height: 14px; margin: 1px; border: 1px solid #ccc; cursor: pointer; }`);
      document.head.appendChild(style);
      const box = el('div', { id: 'attribution' });
      box.appendChild(el('h2', {}, 'Faithfulness'));
      const table = el('table', { id: 'faithfulness' });
      const head = el('tr');
      for (const c of ['method', 'AOPC', 'ins AUC', 'compr', 'suff']) head.appendChild(el('th', {}, c));
      table.appendChild(head);
      for (const name of A.ranked) {
        const tr = el('tr');
        tr.appendChild(el('td', {}, name));
        for (const k of ['aopc', 'insertion_auc', 'comprehensiveness', 'sufficiency']) tr.appendChild(el('td', {}, A.methods[name][k].toFixed(3)));
        table.appendChild(tr);
      }
      box.appendChild(table);
      box.appendChild(el('h2', {}, 'Attribution'));
      const method = el('select', { id: 'attr-method' });
      for (const name of A.ranked) method.appendChild(el('option', { value: name }, name));
      const example = el('select', { id: 'attr-example' });
      A.examples.forEach((e, k) => example.appendChild(el('option', { value: String(k) }, `${k + 1}: ${e.target}`)));
      const units = el('div', { id: 'attr-units' });
      const paint = () => {
        const e = A.examples[+example.value];
        const scores = e.attributions[method.value] || [];
        const top = Math.max(1e-12, ...scores.map(Math.abs));
        units.replaceChildren(...e.units.map((u, j) => {
          const s = scores[j] === undefined ? 0 : scores[j];
          const span = el('span', { className: 'attr-unit', title: `${u}: ${s.toPrecision(3)}` }, u);
          span.style.background = s >= 0 ? `rgba(255,80,40,${(s / top).toFixed(3)})` : `rgba(40,120,255,${(-s / top).toFixed(3)})`;
          return span;
        }));
      };
      method.onchange = paint;
      example.onchange = paint;
      box.append(method, example, units);
      if (A.heads.length) {
        box.appendChild(el('h2', {}, 'Head importance (loss increase when masked)'));
        const layers = [...new Set(A.heads.map((r) => r.layer))];
        const top = Math.max(1e-12, ...A.heads.map((r) => Math.abs(r.importance)));
        const sameOrder = layers.length === META.sets[0].examples[0].maps.length;
        layers.forEach((name, m) => {
          const row = el('div', { className: 'attr-layer' });
          row.appendChild(el('code', {}, `${m} `));
          for (const r of A.heads.filter((x) => x.layer === name)) {
            const cell = el('span', { className: 'attr-head', title: `${name} head ${r.head}: ${r.importance.toPrecision(3)}` });
            cell.style.background = `rgba(255,80,40,${Math.max(0, r.importance / top).toFixed(3)})`;
            if (sameOrder) cell.onclick = () => window.attnlab.setState({ m, h: [r.head] });
            row.appendChild(cell);
          }
          box.appendChild(row);
        });
      }
      aside.appendChild(box);
      paint();
    }
  }

// The switchover picture: one lane per balancer, one row per client, time on x. Each
// connection is drawn from its connect to its greeting (or failure), coloured by the member
// that greeted it; consecutive connections of one client with the same result merge into
// one bar once they are closer than a pixel, so the file stays small.

const COLORS = { old: '#4e79a7', new: '#59a14f', fail: '#e15759' };

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

/** Milliseconds after the demotion by which everything interesting has happened. */
function interestingEnd(tl) {
  let end = tl.promote_ms;
  let firstNew = null;
  for (const [t0, t1, , what] of tl.records) {
    if (t0 < 0) continue;
    if (what === tl.new) {
      if (firstNew === null || t1 < firstNew) firstNew = t1;
    } else end = Math.max(end, t1);
  }
  for (const c of tl.old_sessions_closed_ms ?? []) if (c !== null) end = Math.max(end, c);
  return Math.max(end, firstNew ?? 0);
}

/**
 * timelines: { balancerId: timeline } in the order to draw; labels: { balancerId: label };
 * firstNew: { balancerId: ms } to annotate.
 */
export function switchoverSvg(
  timelines,
  labels,
  { title = 'One planned switchover, seen by the clients' } = {},
) {
  const ids = Object.keys(timelines);
  const W = 960;
  const left = 150;
  const right = 20;
  const top = 84;
  const laneH = 92;
  const gap = 26;
  const H = top + ids.length * (laneH + gap) + 40;
  const t0 = -400;
  const tEnd = Math.min(
    Math.max(...ids.map((id) => timelines[id].end_ms)),
    Math.max(...ids.map((id) => interestingEnd(timelines[id]))) + 600,
  );
  const t1 = Math.max(1000, Math.ceil(tEnd / 500) * 500);
  const x = (t) => left + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * (W - left - right);
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${left}" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left}" y="38" fill="#555">Each row is one client connecting every few ms; a mark is the answer it got, a pale bar the wait for it.</text>`,
  );
  // Legend
  const legend = [
    ['old primary', COLORS.old],
    ['new primary', COLORS.new],
    ['refused / reset / timed out', COLORS.fail],
  ];
  let lx = left;
  for (const [name, color] of legend) {
    out.push(
      `<rect x="${lx}" y="48" width="12" height="10" fill="${color}"/>`,
      `<text x="${lx + 16}" y="57">${esc(name)}</text>`,
    );
    lx += 28 + name.length * 6.5;
  }
  out.push(
    `<path d="M${lx} 58 l-4 7 h8 z" fill="#333"/>`,
    `<text x="${lx + 8}" y="65">a session open on the old primary was closed</text>`,
  );

  ids.forEach((id, i) => {
    const tl = timelines[id];
    const y0 = top + i * (laneH + gap);
    const clients = Math.max(1, ...tl.records.map((r) => r[2] + 1));
    const rowH = (laneH - 10) / clients;
    out.push(
      `<text x="${left - 10}" y="${y0 + laneH / 2}" text-anchor="end" font-weight="bold">${esc(labels[id] ?? id)}</text>`,
    );
    out.push(`<rect x="${left}" y="${y0}" width="${W - left - right}" height="${laneH}" fill="#f7f7f7"/>`);
    const marks = [];
    for (let c = 0; c < clients; c++) {
      const rs = tl.records.filter((r) => r[2] === c && r[1] >= t0 && r[0] <= t1).sort((a, b) => a[1] - b[1]);
      const y = (y0 + 5 + c * rowH).toFixed(1);
      const h = (rowH - 2).toFixed(1);
      let seg = null;
      const flush = () => {
        if (seg) marks.push({ ...seg, y, h });
        seg = null;
      };
      for (const [a, b, , what] of rs) {
        const kind = what === tl.old ? 'old' : what === tl.new ? 'new' : 'fail';
        // A connection that waited (held by the balancer, or sent into a hung member) shows its wait.
        if (b - a > 20 && x(b) - x(a) > 3) {
          out.push(
            `<rect x="${x(a).toFixed(1)}" y="${y}" width="${(x(b) - x(a)).toFixed(1)}" height="${h}" fill="${COLORS[kind]}" fill-opacity="0.25"/>`,
          );
        }
        // The answer itself (greeting or failure) is a mark; marks of one kind within 3 px join into a bar.
        if (seg && seg.kind === kind && x(b) - x(seg.b) < 3) seg.b = b;
        else {
          flush();
          seg = { kind, a: b, b };
        }
      }
      flush();
    }
    // Failures last, so a neighbouring bar never hides them.
    marks.sort((m1, m2) => Number(m1.kind === 'fail') - Number(m2.kind === 'fail'));
    for (const m of marks) {
      const w = Math.max(m.kind === 'fail' ? 2 : 1.5, x(m.b) - x(m.a) + 1.5);
      out.push(
        `<rect x="${x(m.a).toFixed(1)}" y="${m.y}" width="${w.toFixed(1)}" height="${m.h}" fill="${COLORS[m.kind]}"/>`,
      );
    }
    // Old sessions closed by the balancer.
    for (const c of tl.old_sessions_closed_ms ?? []) {
      if (c === null || c > t1) continue;
      out.push(`<path d="M${x(c).toFixed(1)} ${y0 + laneH} l-4 7 h8 z" fill="#333"/>`);
    }
    const open = (tl.old_sessions_closed_ms ?? []).filter((c) => c === null).length;
    const firstNew = Math.min(...tl.records.filter((r) => r[0] >= 0 && r[3] === tl.new).map((r) => r[1]));
    const note = [
      Number.isFinite(firstNew)
        ? `first client on new primary ${Math.round(firstNew - tl.promote_ms)} ms after it became primary`
        : 'no client reached the new primary',
      open > 0
        ? `${open} sessions on the old primary still open at the end`
        : 'every session on the old primary closed (▲)',
    ].join(' · ');
    out.push(`<text x="${left}" y="${y0 + laneH + 18}" fill="#333">${esc(note)}</text>`);
    // Event lines
    out.push(
      `<line x1="${x(0)}" y1="${y0 - 4}" x2="${x(0)}" y2="${y0 + laneH}" stroke="#000" stroke-dasharray="4 3"/>`,
    );
    out.push(
      `<line x1="${x(tl.promote_ms)}" y1="${y0 - 4}" x2="${x(tl.promote_ms)}" y2="${y0 + laneH}" stroke="${COLORS.new}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
    );
    if (i === 0) {
      out.push(
        `<text x="${x(0) - 4}" y="${y0 - 7}" text-anchor="end" font-size="11">old primary → backup</text>`,
      );
      out.push(
        `<text x="${x(tl.promote_ms) + 4}" y="${y0 - 7}" font-size="11" fill="#2d6a27">other → primary</text>`,
      );
    }
  });
  // Axis
  const ya = top + ids.length * (laneH + gap) + 4;
  out.push(`<line x1="${left}" y1="${ya}" x2="${W - right}" y2="${ya}" stroke="#333"/>`);
  const step = t1 - t0 > 6000 ? 1000 : t1 - t0 > 2500 ? 500 : 250;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    out.push(`<line x1="${x(t)}" y1="${ya}" x2="${x(t)}" y2="${ya + 5}" stroke="#333"/>`);
    out.push(`<text x="${x(t)}" y="${ya + 18}" text-anchor="middle">${t / 1000}s</text>`);
  }
  out.push(
    `<text x="${W - right}" y="${ya + 32}" text-anchor="end" fill="#555">time after the old primary was demoted</text>`,
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

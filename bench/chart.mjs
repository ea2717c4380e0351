// The capacity chart as hand-written SVG: each resource's share of its Workers Free plan
// daily limit against the number of users (both axes logarithmic), for each usage mix
// (solid: the first mix, dashed: the second), the limit and the degrade threshold, and
// the brief's claim (30,000 users, and its table's shares there).
import { BRIEF, LIMITS, RESOURCES } from './lib/model.mjs';

const W = 920;
const H = 560;
const M = { left: 78, right: 190, top: 56, bottom: 64 };
const X0 = 10;
const X1 = 100_000;
const Y0 = 0.0001; // 0.01 %
const Y1 = 10; // 1,000 %

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const px = (n) => M.left + ((Math.log10(n) - Math.log10(X0)) / (Math.log10(X1) - Math.log10(X0))) * (W - M.left - M.right);
const py = (s) => {
  const c = Math.min(Y1, Math.max(Y0, s));
  return H - M.bottom - ((Math.log10(c) - Math.log10(Y0)) / (Math.log10(Y1) - Math.log10(Y0))) * (H - M.top - M.bottom);
};
const fmtUsers = (n) => (n >= 1000 ? `${n / 1000}k` : String(n));
const fmtPct = (s) => (s >= 0.01 ? `${Math.round(s * 100)}%` : `${Number((s * 100).toPrecision(1))}%`);

const DASHES = ['', '7 4', '2 3'];

/**
 * @param {object} o
 * @param {{label:string, series:{users:number, share:Record<string,number>}[], rows:{key:string, model:number}[],
 *          binding:string, kvFastPathUntil:number}[]} o.mixes   one entry per usage mix
 * @param {string} o.subtitle
 */
export function capacityChart({ mixes, subtitle }) {
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${M.left}" y="24" font-size="16" font-weight="bold">edgesync on the Workers Free plan: share of each daily limit by number of users</text>`);
  out.push(`<text x="${M.left}" y="42" fill="#555">${esc(subtitle)}</text>`);

  // grid and axes
  for (let e = Math.log10(X0); e <= Math.log10(X1); e++) {
    for (const m of [1, 2, 5]) {
      const n = m * 10 ** e;
      if (n < X0 || n > X1) continue;
      const x = px(n);
      out.push(`<line x1="${x}" y1="${M.top}" x2="${x}" y2="${H - M.bottom}" stroke="${m === 1 ? '#ddd' : '#f0f0f0'}"/>`);
      if (m === 1 || m === 5) out.push(`<text x="${x}" y="${H - M.bottom + 18}" text-anchor="middle" fill="#333">${fmtUsers(n)}</text>`);
    }
  }
  for (let e = Math.log10(Y0); e <= Math.log10(Y1); e++) {
    const s = 10 ** e;
    const y = py(s);
    out.push(`<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 8}" y="${y + 4}" text-anchor="end" fill="#333">${fmtPct(s)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 18}" text-anchor="middle" fill="#333">users (log scale)</text>`);
  out.push(`<text transform="translate(20 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#333">share of the daily Free-plan limit (log scale)</text>`);

  // the limit and the degrade threshold
  out.push(`<line x1="${M.left}" y1="${py(1)}" x2="${W - M.right}" y2="${py(1)}" stroke="#000" stroke-width="1.5"/>`);
  out.push(`<text x="${M.left + 6}" y="${py(1) - 6}" fill="#000">limit (100%)</text>`);
  out.push(`<line x1="${M.left}" y1="${py(0.9)}" x2="${W - M.right}" y2="${py(0.9)}" stroke="#000" stroke-dasharray="2 3"/>`);

  // the brief's claim
  const xb = px(BRIEF.users);
  out.push(`<line x1="${xb}" y1="${M.top}" x2="${xb}" y2="${H - M.bottom}" stroke="#444" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${xb - 6}" y="${M.top + 14}" text-anchor="end" fill="#444">brief: 30,000 users</text>`);

  // the curves, one style per mix
  mixes.forEach((m, mi) => {
    const dash = DASHES[mi % DASHES.length];
    for (const r of RESOURCES) {
      const d = m.series.map((p, i) => `${i ? 'L' : 'M'}${px(p.users).toFixed(1)},${py(p.share[r.key]).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${r.color}" stroke-width="${r.key === m.binding ? 3 : 2}"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
      const row = m.rows.find((x) => x.key === r.key);
      if (row && Number.isFinite(row.model) && row.model >= X0 && row.model <= X1) {
        out.push(`<circle cx="${px(row.model)}" cy="${py(1)}" r="4.5" fill="${mi ? '#fff' : r.color}" stroke="${r.color}" stroke-width="2"/>`);
      }
    }
    if (Number.isFinite(m.kvFastPathUntil) && m.kvFastPathUntil >= X0 && m.kvFastPathUntil <= X1) {
      const x = px(m.kvFastPathUntil);
      out.push(`<line x1="${x}" y1="${py(0.9) - 8}" x2="${x}" y2="${py(0.9) + 8}" stroke="#ff7f0e" stroke-width="2"${dash ? ` stroke-dasharray="2 2"` : ''}/>`);
    }
  });
  for (const r of RESOURCES) {
    out.push(`<circle cx="${xb}" cy="${py(BRIEF.perDay[r.key] / LIMITS[r.key])}" r="3" fill="#fff" stroke="${r.color}" stroke-width="1.5"/>`);
  }

  // legend
  let y = M.top + 6;
  const lx = W - M.right + 16;
  out.push(`<text x="${lx}" y="${y + 4}" font-weight="bold">users at the limit</text>`);
  y += 18;
  mixes.forEach((m, mi) => {
    out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 22}" y2="${y}" stroke="#444" stroke-width="2"${DASHES[mi % DASHES.length] ? ` stroke-dasharray="${DASHES[mi % DASHES.length]}"` : ''}/>`);
    out.push(`<text x="${lx + 28}" y="${y + 4}">${esc(m.label)}</text>`);
    y += 16;
  });
  y += 8;
  const fmtAt = (m, key) => {
    const row = m.rows.find((x) => x.key === key);
    const at = row && Number.isFinite(row.model) ? Math.round(row.model).toLocaleString('en-US') : 'never';
    return `${at}${key === m.binding ? ' ←' : ''}`;
  };
  for (const r of RESOURCES) {
    out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 22}" y2="${y}" stroke="${r.color}" stroke-width="3"/>`);
    out.push(`<text x="${lx + 28}" y="${y + 4}">${esc(r.label)}</text>`);
    out.push(`<text x="${lx + 28}" y="${y + 19}" fill="#555">${esc(mixes.map((m) => fmtAt(m, r.key)).join(' / '))}</text>`);
    y += 38;
  }
  out.push(`<text x="${lx}" y="${y + 4}" fill="#555">← binds first</text>`);
  y += 20;
  out.push(`<circle cx="${lx + 11}" cy="${y}" r="3" fill="#fff" stroke="#444" stroke-width="1.5"/>`);
  out.push(`<text x="${lx + 28}" y="${y + 4}">brief's table at 30k</text>`);
  y += 20;
  out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 22}" y2="${y}" stroke="#000" stroke-dasharray="2 3"/>`);
  out.push(`<text x="${lx + 28}" y="${y + 4}">reads pause (90%)</text>`);
  y += 20;
  out.push(`<line x1="${lx + 11}" y1="${y - 8}" x2="${lx + 11}" y2="${y + 8}" stroke="#ff7f0e" stroke-width="2"/>`);
  out.push(`<text x="${lx + 28}" y="${y + 4}">KV guard: fast path off</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

// Shared by the benchmark scripts: flags, a keep-alive HTTP client that reads X-Sync-Ops,
// result files, and small statistics. Workers are started with tests/helpers/server.mjs
// (wrangler dev, local D1 + KV, fresh state) and tokens are minted with
// tests/helpers/client.mjs (jose), exactly as the integration tests do.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { ROOT } from '../../tests/helpers/server.mjs';
import { parseOps } from '../../tests/helpers/client.mjs';

export { ROOT, parseOps };
export const RESULTS = path.join(ROOT, 'bench', 'results');

// Worker output at `warn`: the per-request JSON log lines would otherwise be piped through
// wrangler and this process for every request, which costs CPU the load test competes for.
process.env.EDGESYNC_TEST_LOG_LEVEL ??= 'warn';

/**
 * Parses `--name value`, `--name=value` and bare `--flag` (true) against `defaults`, whose
 * types decide how values are read. Unknown flags are an error, so a typo is not silently
 * a default. `--help` prints the flags with their defaults and `help` texts.
 */
export function flags(defaults, help = {}, argv = process.argv.slice(2)) {
  const out = { ...defaults };
  const usage = () =>
    Object.entries(defaults)
      .map(([k, v]) => `  --${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} ${JSON.stringify(v)}${help[k] ? `  ${help[k]}` : ''}`)
      .join('\n');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(`flags (default):\n${usage()}`);
      process.exit(0);
    }
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`unexpected argument ${arg}\nflags:\n${usage()}`);
    const key = m[1].replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown flag --${m[1]}\nflags:\n${usage()}`);
    const kind = typeof defaults[key];
    let value = m[2];
    if (value === undefined) {
      if (kind === 'boolean' && (i + 1 >= argv.length || argv[i + 1].startsWith('--'))) value = 'true';
      else value = argv[++i];
    }
    if (kind === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`--${m[1]} needs a number, got ${value}`);
      out[key] = n;
    } else if (kind === 'boolean') {
      if (!['true', 'false', '1', '0', 'yes', 'no'].includes(String(value))) throw new Error(`--${m[1]} needs true/false, got ${value}`);
      out[key] = ['true', '1', 'yes'].includes(String(value));
    } else {
      out[key] = value;
    }
  }
  return out;
}

const agents = new Map();
function agentFor(base, maxSockets) {
  let a = agents.get(base);
  if (!a) {
    a = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
    agents.set(base, a);
  }
  return a;
}

/**
 * One HTTP request over a keep-alive connection (node:http, no dependencies).
 * Resolves to {status, headers, text, json, ops, serverMs, ms}; `ops` is X-Sync-Ops parsed,
 * `serverMs` the `total` of Server-Timing, `ms` the client-side latency.
 */
export function send(base, { method = 'GET', path: p, headers = {}, body, token, timeoutMs = 120_000, maxSockets = 16 }) {
  const url = new URL(p, base);
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    payload = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  if (payload !== undefined) h['content-length'] = Buffer.byteLength(payload);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers: h, agent: agentFor(base, maxSockets) },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          const text = Buffer.concat(chunks).toString('utf8');
          let json = null;
          if (text && /json/.test(res.headers['content-type'] || '')) {
            try {
              json = JSON.parse(text);
            } catch {
              json = null;
            }
          }
          const opsHeader = res.headers['x-sync-ops'];
          const timing = /(?:^|,)\s*total;dur=([\d.]+)/.exec(res.headers['server-timing'] || '');
          resolve({
            status: res.statusCode,
            headers: res.headers,
            text,
            json,
            opsHeader,
            ops: opsHeader ? parseOps(opsHeader) : null,
            serverMs: timing ? Number(timing[1]) : null,
            ms,
          });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${p}`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Throws with the response shown unless its status is one of `ok`. */
export function expect(res, ok, what) {
  const list = Array.isArray(ok) ? ok : [ok];
  if (!list.includes(res.status)) {
    throw new Error(`${what}: expected HTTP ${list.join('/')}, got ${res.status} ${res.opsHeader ?? ''} ${res.text.slice(0, 500)}`);
  }
  return res;
}

export function closeAgents() {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

export const OPS_KEYS = ['d1', 'rows-read', 'rows-written', 'kv-read', 'kv-write'];
export const zeroOps = () => Object.fromEntries(OPS_KEYS.map((k) => [k, 0]));
export function addOps(acc, ops) {
  for (const k of OPS_KEYS) acc[k] += ops?.[k] ?? 0;
  return acc;
}

/** The q-quantile (0..1) of a sorted array (nearest rank). */
export function quantile(sorted, q) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** The median of the finite values of `xs` (the mean of the middle two for an even count); null when there are none. */
export function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Deterministic PRNG (mulberry32) so a replay is the same population every run. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

export function writeResult(name, data) {
  fs.mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ generated: new Date().toISOString(), ...data }, null, 2));
  return file;
}

export function readResult(name) {
  const file = path.join(RESULTS, `${name}.json`);
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null;
}

/** `count` tasks with ids `${prefix}-${i}` (title only; the rest takes defaults). */
export function tasks(count, prefix, start = 0) {
  return Array.from({ length: count }, (_, i) => ({ type: 'tasks', id: `${prefix}-${start + i}`, title: `task ${prefix} ${start + i}` }));
}

export const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

/** A long Rust name (a profile entry) with its innermost generic arguments folded until it fits. */
export function abbrev(name, max = 110) {
  let s = name;
  while (s.length > max) {
    const t = s.replace(/<[^<>]*>/, '‹›');
    if (t === s) break;
    s = t;
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const WORDS = (
  'call buy send book pay fix clean check plan email write read review order pick up drop off ' +
  'the a for with about to at from milk bread eggs coffee rent invoice report slides meeting ' +
  'dentist doctor car bike kitchen garden garage tickets passport taxes bank mom dad team ' +
  'client project budget notes draft letter gift birthday party flight hotel train weekly ' +
  'monday friday tomorrow tonight morning quarterly laundry dishes groceries plumber'
).split(' ');

/**
 * Typical tasks (issue #13): titles of 2–7 words, a third with a description (6–25
 * words), 40% with a due date, some with a priority or pinned; ids as the demo makes them
 * (`t-` and the first 13 characters of a random UUID). `random` is a PRNG from rng(), so a
 * run is the same data every time.
 */
export function typicalTasks(count, prefix, random) {
  const hex = (n) => Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join('');
  const words = (n) => Array.from({ length: n }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ');
  const day = 86_400_000;
  return Array.from({ length: count }, () => {
    const title = words(2 + Math.floor(random() * 6));
    const t = { type: 'tasks', id: `${prefix}-${hex(8)}-${hex(4)}`, title: title[0].toUpperCase() + title.slice(1) };
    if (random() < 1 / 3) t.description = `${words(6 + Math.floor(random() * 20))}.`;
    if (random() < 0.4) t.due_date = 1_796_000_000_000 + Math.floor(random() * 120) * day;
    if (random() < 0.25) t.priority = random() < 0.5 ? 'high' : 'low';
    if (random() < 0.1) t.pinned = true;
    return t;
  });
}

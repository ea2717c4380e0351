// A reference implementation of POST /api/sync in JavaScript, for the SDK's Node tests:
// the worker's rules as the README states them (per-user revs, version rule, idempotent
// replays, stale_version conflicts with the server's copy, pulls without the request's own
// changes, pages that end at their last row, tombstones, the purge horizon and its 410,
// degraded mode). One instance is one user's data. It records every write it applied, so
// tests can check that no acknowledged edit was lost.

const MANAGED = new Set(['type', 'id', 'version', 'rev', 'created_at', 'updated_at', 'deleted_at', 'device_id', 'deleted']);
const key = (t, id) => `${t}:${id}`;
export const fields = (r) => Object.fromEntries(Object.entries(r).filter(([k]) => !MANAGED.has(k)));
const same = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

export class Reference {
  constructor() {
    this.rows = new Map(); // key → record (with type; tombstones keep deleted_at)
    this.seq = 0;
    this.horizon = 0; // pulls from 0 < cursor < horizon get 410
    this.now = 1_700_000_000_000;
    this.history = new Map(); // key → [{version, deleted, fields}] every applied write
    this.mode = 'normal'; // 'degraded': pushes applied, no pull; 'refused': everything 503
  }

  rev() {
    this.seq = Math.max(this.now, this.seq + 1);
    return this.seq;
  }

  /** The worker's answer to one POST /api/sync body: {status, body, headers}. */
  sync(req) {
    this.now += 1;
    if (!req || typeof req !== 'object' || !Number.isInteger(req.cursor ?? 0)) return problem(400, 'invalid_json');
    const cursor = req.cursor ?? 0;
    const changes = req.changes ?? [];
    const limit = req.limit ?? 500;
    if (this.mode === 'refused' || (this.mode === 'degraded' && !changes.length)) {
      return { ...problem(503, 'degraded'), headers: { 'retry-after': '3600' } };
    }
    if (cursor > 0 && cursor < this.horizon && this.mode === 'normal') return problem(410, 'reset_required');
    const applied = [];
    const conflicts = [];
    const own = new Set();
    for (const c of changes) {
      const k = key(c.type ?? 'tasks', c.id);
      const cur = this.rows.get(k);
      const s = cur?.version ?? 0;
      const del = c.deleted === true || (c.deleted_at != null && c.deleted !== false);
      const v = c.version ?? s + 1;
      if (v > s) {
        const rec = del
          ? { ...(cur ?? { type: c.type, id: c.id, created_at: this.now }), version: v, rev: this.rev(), updated_at: this.now, deleted_at: this.now }
          : { type: c.type, id: c.id, ...fields(c), version: v, rev: this.rev(), created_at: cur?.created_at ?? this.now, updated_at: this.now, deleted_at: null, device_id: c.device_id ?? null };
        this.rows.set(k, rec);
        own.add(rec.rev);
        applied.push({ type: c.type, id: c.id, version: v, rev: rec.rev });
        const h = this.history.get(k) ?? [];
        h.push({ version: v, deleted: del, fields: del ? null : fields(c) });
        this.history.set(k, h);
      } else if (cur && (del ? cur.deleted_at != null : cur.deleted_at == null && same(fields(c), fields(cur)))) {
        applied.push({ type: c.type, id: c.id, version: s, rev: cur.rev });
      } else {
        conflicts.push({ type: c.type, id: c.id, reason: 'stale_version', server: cur ? { ...cur } : null });
      }
    }
    if (this.mode === 'degraded') {
      return { status: 200, body: { applied, conflicts, updates: [], deleted: [], cursor, has_more: false, etag: null, server_time: this.now, degraded: true } };
    }
    const rows = [...this.rows.values()].filter((r) => r.rev > cursor && !own.has(r.rev)).sort((a, b) => a.rev - b.rev);
    const page = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    return {
      status: 200,
      body: {
        applied,
        conflicts,
        updates: page.filter((r) => r.deleted_at == null).map((r) => ({ ...r })),
        deleted: page.filter((r) => r.deleted_at != null).map((r) => ({ type: r.type, id: r.id, rev: r.rev })),
        cursor: hasMore ? page.at(-1).rev : this.seq,
        has_more: hasMore,
        etag: `"s${this.seq}"`,
        server_time: this.now,
      },
    };
  }

  /** GET /api/sync/{type}?limit=&after=: live records paged by id; cursor = the state now. */
  download(type, { limit = 500, after = '' } = {}) {
    this.now += 1;
    if (this.mode !== 'normal') return { ...problem(503, 'degraded'), headers: { 'retry-after': '3600' } };
    const all = [...this.rows.values()].filter((r) => r.type === type && r.deleted_at == null && r.id > after).sort((a, b) => (a.id < b.id ? -1 : 1));
    const data = all.slice(0, limit).map(({ type: _t, ...r }) => r);
    return { status: 200, body: { success: true, data, count: data.length, cursor: this.seq, has_more: all.length > limit, timestamp: this.now } };
  }

  /** Answers a request of the scripted server (POST /api/sync or a full download). */
  answer(req) {
    if (req.method === 'GET') {
      const u = new URL(req.path, 'http://x');
      const type = u.pathname.split('/')[3];
      return this.download(type, { limit: Number(u.searchParams.get('limit') ?? 500), after: u.searchParams.get('after') ?? '' });
    }
    return this.sync(req.body);
  }

  /** The cron: tombstones go, pulls from older cursors must reset. */
  purge() {
    for (const [k, r] of this.rows) if (r.deleted_at != null) this.rows.delete(k);
    this.horizon = this.seq;
  }

  /** Live records by type → id → record without `type` (what a synced client holds). */
  live() {
    const out = {};
    for (const r of this.rows.values()) {
      if (r.deleted_at != null) continue;
      const { type, ...rest } = r;
      (out[type] ??= {})[r.id] = rest;
    }
    return out;
  }
}

export function problem(status, error, extra = {}) {
  return { status, body: { type: 'about:blank', title: error, status, detail: error, error, timestamp: Date.now(), ...extra } };
}

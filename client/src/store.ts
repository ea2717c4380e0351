// Local state: the records of every collection, the outbox, the sync metadata, and what a
// local edit or a server reply does to them. Every mutation returns the storage keys it
// touched, so the caller persists them in one atomic write (and tells other tabs).
//
// Storage keys: "m" the metadata, "r:<type>:<id>" a record, "o:<seq>" an outbox entry.
import type { ConflictEvent } from './types.js';

export type Rec = Record<string, any>;

/** An outbox entry: one local edit of one record (d = null: a delete). */
export interface Entry {
  k: string;
  t: string;
  id: string;
  d: Rec | null;
  /** Server version the edit was based on; -1: comes after the previous entry of the record. */
  b: number;
  /** Sent at least once (may have been applied): never coalesced into. */
  s?: 1;
}

export interface Meta {
  cursor: number;
  etag: string | null;
  lastSyncAt: number | null;
  /** Last local or remote change (activity-based polling). */
  activeAt: number;
  deviceId?: string;
  /** A full download (after 410) is due or under way. */
  resetting?: 1;
  /** Reads paused until (degraded mode). */
  resumeAt?: number;
  /** Writes refused until. */
  pushResumeAt?: number;
}

export interface Writes {
  puts: Array<[string, unknown]>;
  dels: string[];
}

/** Sync fields the server owns; stripped from what is sent. */
const SYNC_FIELDS = ['type', 'version', 'rev', 'created_at', 'updated_at', 'deleted_at', 'device_id'];

export const rkey = (t: string, id: string) => `r:${t}:${id}`;

export function fieldsOf(r: Rec): Rec {
  const out: Rec = {};
  for (const k in r) if (!SYNC_FIELDS.includes(k)) out[k] = r[k];
  return out;
}

function syncFieldsOf(r: Rec | undefined): Rec {
  const out: Rec = {};
  if (r) for (const k of SYNC_FIELDS) if (k in r && k !== 'type') out[k] = r[k];
  return out;
}

export class Store {
  recs = new Map<string, Map<string, Rec>>();
  outbox = new Map<string, Entry>();
  meta: Meta = { cursor: 0, etag: null, lastSyncAt: null, activeAt: 0 };
  private n = 0;

  constructor(private tab: string) {}

  table(t: string): Map<string, Rec> {
    let m = this.recs.get(t);
    if (!m) this.recs.set(t, (m = new Map()));
    return m;
  }

  /** Applies raw storage writes to memory (load, and another tab's writes). Returns changed types. */
  applyRaw(puts: Array<[string, unknown]>, dels: string[], loaded = false): Set<string> {
    const types = new Set<string>();
    const one = (k: string, v: any) => {
      if (k === 'm') {
        if (v) this.meta = v;
      } else if (k[0] === 'o') {
        if (v) this.outbox.set(k.slice(2), loaded ? { ...v, s: 1 } : v);
        else this.outbox.delete(k.slice(2));
      } else if (k[0] === 'r') {
        const i = k.indexOf(':', 2);
        const t = k.slice(2, i);
        if (v) this.table(t).set(k.slice(i + 1), v);
        else this.table(t).delete(k.slice(i + 1));
        types.add(t);
      }
    };
    for (const k of dels) one(k, undefined);
    for (const [k, v] of puts) one(k, v);
    return types;
  }

  /** The outbox entries of one record, oldest first. */
  entries(t: string, id: string): Entry[] {
    return this.sorted().filter((e) => e.t === t && e.id === id);
  }

  pending(t: string, id: string): boolean {
    for (const e of this.outbox.values()) if (e.t === t && e.id === id) return true;
    return false;
  }

  sorted(): Entry[] {
    return [...this.outbox.values()].sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  }

  /** Up to `max` entries to send: the oldest of each record only (the rest wait for its answer). */
  take(max: number): Entry[] {
    const out: Entry[] = [];
    const keys = new Set<string>();
    for (const e of this.sorted()) {
      const key = rkey(e.t, e.id);
      if (keys.has(key)) continue;
      keys.add(key);
      // a head still chained (its predecessor gone): it was based on the local copy
      if (e.b < 0) e.b = this.table(e.t).get(e.id)?.version ?? 0;
      out.push(e);
      if (out.length >= max) break;
    }
    return out;
  }

  /** A local put (d) or delete (d = null). `coalesce`: fold into an unsent entry of the record. */
  edit(t: string, id: string, d: Rec | null, now: number, coalesce: boolean): Writes {
    const w: Writes = { puts: [], dels: [] };
    const tbl = this.table(t);
    const cur = tbl.get(id);
    const list = this.entries(t, id);
    const last = list.at(-1);
    let entry: Entry | undefined;
    if (coalesce && last && !last.s) {
      if (d === null && last.b === 0 && list.length === 1) {
        // created and deleted before the server saw it: nothing to send
        this.outbox.delete(last.k);
        w.dels.push('o:' + last.k);
      } else {
        last.d = d;
        entry = last;
      }
    } else {
      let k = `${String(now).padStart(15, '0')}.${this.tab}.${String(++this.n).padStart(6, '0')}`;
      // after the record's previous entry, whatever the clock or the tab said
      if (last && k <= last.k) k = last.k + '+';
      entry = { k, t, id, d, b: last ? -1 : (cur?.version ?? 0) };
      this.outbox.set(k, entry);
    }
    if (entry) w.puts.push(['o:' + entry.k, entry]);
    if (d) {
      const rec = { ...syncFieldsOf(cur), ...d, id };
      tbl.set(id, rec);
      w.puts.push([rkey(t, id), rec]);
    } else {
      tbl.delete(id);
      w.dels.push(rkey(t, id));
    }
    this.meta.activeAt = now;
    w.puts.push(['m', this.meta]);
    return w;
  }

  private drop(e: Entry, w: Writes) {
    this.outbox.delete(e.k);
    w.dels.push('o:' + e.k);
  }

  /** Removes a refused entry; its successor now starts from the same base. */
  reject(e: Entry, w: Writes) {
    this.drop(e, w);
    const next = this.entries(e.t, e.id)[0];
    if (next && next.b === -1) {
      next.b = e.b;
      w.puts.push(['o:' + next.k, next]);
    }
  }

  /**
   * Applies a 200 reply of POST /api/sync to the entries it carried (`sent`).
   * Returns the writes, the types that changed remotely and the conflicts.
   */
  apply(body: any, sent: Entry[], degraded: boolean) {
    const w: Writes = { puts: [], dels: [] };
    const types = new Set<string>();
    const conflicts: ConflictEvent[] = [];
    const byKey = new Map(sent.map((e) => [rkey(e.t, e.id), e]));
    const put = (t: string, id: string, r: Rec | null) => {
      if (r) {
        this.table(t).set(id, r);
        w.puts.push([rkey(t, id), r]);
      } else if (this.table(t).delete(id)) w.dels.push(rkey(t, id));
      types.add(t);
    };
    for (const a of body.applied) {
      const e = byKey.get(rkey(a.type, a.id));
      if (!e) continue;
      byKey.delete(rkey(a.type, a.id));
      this.drop(e, w);
      const next = this.entries(e.t, e.id)[0];
      if (next && (next.b === -1 || next.b <= e.b)) {
        next.b = a.version;
        w.puts.push(['o:' + next.k, next]);
      }
      const rec = this.table(e.t).get(e.id);
      if (rec) {
        rec.version = a.version;
        rec.rev = a.rev;
        w.puts.push([rkey(e.t, e.id), rec]);
      }
    }
    for (const c of body.conflicts) {
      const e = byKey.get(rkey(c.type, c.id));
      if (!e) continue;
      byKey.delete(rkey(c.type, c.id));
      const local = this.table(e.t).get(e.id) ?? null;
      for (const x of this.entries(e.t, e.id)) this.drop(x, w);
      const server = c.server && c.server.deleted_at == null ? fieldsStrip(c.server) : null;
      put(e.t, e.id, server);
      conflicts.push({ type: e.t, id: e.id, reason: String(c.reason), local: local && { ...local }, server: server && { ...server } });
    }
    if (!degraded) {
      for (const u of body.updates) {
        if (!this.pending(u.type, u.id)) put(u.type, u.id, fieldsStrip(u));
      }
      for (const d of body.deleted) {
        if (!this.pending(d.type, d.id)) put(d.type, d.id, null);
      }
    }
    return { w, types, conflicts };
  }

  /** End of a full download: records the server no longer has (and that are not pending) go. */
  prune(seen: Set<string>, w: Writes): Set<string> {
    const types = new Set<string>();
    for (const [t, tbl] of this.recs) {
      for (const id of [...tbl.keys()]) {
        if (!seen.has(rkey(t, id)) && !this.pending(t, id)) {
          tbl.delete(id);
          w.dels.push(rkey(t, id));
          types.add(t);
        }
      }
    }
    return types;
  }
}

/** A server record as stored locally: without the `type` that POST /api/sync adds. */
function fieldsStrip(r: Rec): Rec {
  const { type: _t, ...rest } = r;
  return rest;
}

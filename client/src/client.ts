// The sync client: collections over the local store, the sync loop (one POST /api/sync
// per round, following has_more), the answer to every status the worker gives, and the
// schedule (debounced pushes, activity-based polls, focus / visibility / online triggers,
// backoff) on an injectable clock.
import { realClock } from './clock.js';
import { COLLECTIONS } from './collections.js';
import { indexedDbStorage, memoryStorage } from './storage.js';
import { type Entry, fieldsOf, type Rec, rkey, Store, type Writes } from './store.js';
import { joinTabs, type Tabs } from './tabs.js';
import { type Reply, request } from './transport.js';
import type {
  ClientOptions, Clock, CollectionName, ConflictEvent, Input, Item, RejectEvent, Schedule, Status, StorageAdapter,
} from './types.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export const DEFAULT_SCHEDULE: Schedule = {
  debounceMs: 5_000,
  maxWaitMs: 30_000,
  activeIntervalMs: 6 * HOUR,
  inactiveIntervalMs: 12 * HOUR,
  inactiveAfterMs: 7 * DAY,
  staleMs: 3 * MIN,
  focusDebounceMs: 10_000,
  timeoutMs: 10_000,
  retryBaseMs: 1_000,
  retryMaxMs: 5 * MIN,
  // The server's MAX_CHANGES (100 by default: a push's CPU grows with its changes and the
  // user's records, and 100 fits the Workers Free plan's 10 ms for a user of 5,000
  // records, BENCHMARKS.md section 4); larger outboxes go in rounds. A server that takes
  // fewer answers 413 and the batch is halved.
  maxChanges: 100,
};

const ID = /^[A-Za-z0-9_.:-]{1,128}$/;

type Events = {
  status: Status;
  change: { type: string; ids: string[]; source: 'local' | 'remote' };
  conflict: ConflictEvent;
  reject: RejectEvent;
};

export class Collection<K extends CollectionName> {
  constructor(private c: SyncClient, readonly name: K) {}
  get(id: string): Item<K> | undefined {
    const r = this.c.store.table(this.name).get(id);
    return r && ({ ...r } as Item<K>);
  }
  list(): Item<K>[] {
    return [...this.c.store.table(this.name).values()].map((r) => ({ ...r }) as Item<K>);
  }
  /** Local first: resolves once the change is in the persisted outbox. */
  put(item: Input<K>): Promise<void> {
    return this.c.edit(this.name, (item as Rec).id, fieldsOf(item as Rec));
  }
  delete(id: string): Promise<void> {
    return this.c.edit(this.name, id, null);
  }
  /** fn(list) after every local or remote change of this collection; returns unsubscribe. */
  subscribe(fn: (items: Item<K>[]) => void): () => void {
    return this.c.on('change', (e) => e.type === this.name && fn(this.list()));
  }
}

export class SyncClient {
  readonly store: Store;
  status: Status = { state: 'idle', pending: 0, lastSyncAt: null, leader: false };
  /** Resolves once local data is loaded from storage. */
  readonly ready: Promise<void>;
  private sch: Schedule;
  private clock: Clock;
  private storage: StorageAdapter;
  private f: typeof fetch;
  private rnd: () => number;
  private tabs?: Tabs;
  private handlers = new Map<string, Set<(v: any) => void>>();
  private cols = new Map<string, Collection<any>>();
  private writes: Promise<unknown> = Promise.resolve();
  private timer: unknown;
  private running?: Promise<void>;
  private again = false;
  private token?: string;
  private leader = false;
  private closed = false;
  private authFailed = false;
  private failures = 0;
  private retryAt?: number;
  private pushDue?: number;
  private firstUnsent?: number;
  private lastTrigger = -Infinity;
  private maxChanges: number;
  private waiters = new Map<string, () => void>();
  private unlisten: Array<() => void> = [];

  constructor(private o: ClientOptions) {
    this.sch = { ...DEFAULT_SCHEDULE, ...o.schedule };
    this.maxChanges = this.sch.maxChanges;
    this.clock = o.clock ?? realClock;
    this.rnd = o.random ?? Math.random;
    const g = globalThis as any;
    this.f = o.fetch ?? ((...a: Parameters<typeof fetch>) => g.fetch(...a));
    const s = o.storage ?? (g.indexedDB ? 'indexeddb' : 'memory');
    this.storage = s === 'memory' ? memoryStorage() : s === 'indexeddb' ? indexedDbStorage(o.name) : s;
    this.store = new Store(this.rnd().toString(36).slice(2, 8));
    this.ready = this.start();
  }

  // ---- public surface ------------------------------------------------------------------

  collection<K extends CollectionName>(name: K): Collection<K> {
    if (!(COLLECTIONS as readonly string[]).includes(name)) throw new TypeError(`unknown collection ${name}`);
    let c = this.cols.get(name);
    if (!c) this.cols.set(name, (c = new Collection(this, name)));
    return c;
  }

  on<E extends keyof Events>(ev: E, fn: (v: Events[E]) => void): () => void {
    let s = this.handlers.get(ev);
    if (!s) this.handlers.set(ev, (s = new Set()));
    s.add(fn);
    return () => s.delete(fn);
  }

  /** Syncs now (in another tab: asks the syncing tab); resolves with the status after it. */
  async sync(): Promise<Status> {
    await this.ready;
    this.authFailed = false;
    if (this.leader) {
      this.retryAt = undefined; // asked for now: backoff does not apply
      await this.run();
    } else {
      const id = this.rnd().toString(36).slice(2);
      await new Promise<void>((resolve) => {
        this.waiters.set(id, resolve);
        this.tabs?.post({ k: 'sync', id });
        this.clock.setTimeout(resolve, this.sch.timeoutMs * 3); // the leader may be closing
      });
      this.waiters.delete(id);
    }
    return this.status;
  }

  /** Resolves when no sync is running and every local write is persisted. */
  async idle(): Promise<void> {
    await this.ready;
    while (this.running) await this.running;
    await this.writes;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimeout(this.timer);
    for (const u of this.unlisten) u();
    this.tabs?.close();
    this.writes.then(() => this.storage.close?.());
  }

  // ---- local edits ---------------------------------------------------------------------

  async edit(t: string, id: string, d: Rec | null): Promise<void> {
    if (typeof id !== 'string' || !ID.test(id)) throw new TypeError(`invalid id ${id}`);
    await this.ready;
    if (this.closed) throw new Error('client closed');
    const now = this.clock.now();
    const w = this.store.edit(t, id, d, now, this.leader);
    // only the syncing tab writes the metadata (a follower's copy may lag behind it)
    if (!this.leader) w.puts = w.puts.filter(([k]) => k !== 'm');
    const p = this.persist(w);
    this.emit('change', { type: t, ids: [id], source: 'local' });
    this.tabs?.post({ k: 'w', ...w, local: [t, id] });
    if (this.leader) this.scheduleEdit(now);
    this.set({});
    await p;
  }

  private scheduleEdit(now: number) {
    this.firstUnsent ??= now;
    this.pushDue = Math.min(this.firstUnsent + this.sch.maxWaitMs, now + this.sch.debounceMs);
    this.plan();
  }

  /** Persists without waiting (a failed write is retried by the next reply or edit). */
  private save(w: Writes) {
    this.persist(w).catch(() => {});
  }

  private persist(w: Writes): Promise<void> {
    const p = this.writes.then(() => (w.puts.length || w.dels.length ? this.storage.write(w.puts, w.dels) : undefined));
    this.writes = p.catch(() => {});
    return p.then(() => {});
  }

  // ---- start, tabs ---------------------------------------------------------------------

  private async start() {
    this.store.applyRaw(await this.storage.load(), [], true);
    this.store.meta.deviceId ??= this.o.deviceId ?? `d-${this.rnd().toString(36).slice(2, 12)}`;
    if (this.o.tabs !== false) {
      this.tabs = joinTabs(
        this.storage.shared,
        () => void this.becomeLeader(true).catch((e) => this.set({ state: 'error', error: String(e) })),
        (msg) => this.onMessage(msg),
      );
    }
    this.listen();
    // Without other tabs this client leads at once; with them, when it gets the lock.
    if (!this.tabs) await this.becomeLeader(false);
    else this.set({});
  }

  private async becomeLeader(reload: boolean) {
    if (this.closed || this.leader) return;
    if (reload) {
      // Other tabs wrote while this one followed: start again from storage.
      await this.ready;
      const fresh = new Store('');
      fresh.applyRaw(await this.storage.load(), [], true);
      this.store.recs = fresh.recs;
      this.store.outbox = fresh.outbox;
      this.store.meta = { ...fresh.meta, deviceId: fresh.meta.deviceId ?? this.store.meta.deviceId };
      for (const t of this.store.recs.keys()) this.emit('change', { type: t, ids: [], source: 'remote' });
    }
    this.leader = true;
    const now = this.clock.now();
    const m = this.store.meta;
    if (this.store.outbox.size) this.pushDue = now;
    this.set({ state: this.paused(now) ? 'paused' : 'idle', lastSyncAt: m.lastSyncAt, resumeAt: m.resumeAt });
    // A new device, or one whose last sync is stale, syncs at once.
    if (m.lastSyncAt == null || now - m.lastSyncAt > this.sch.staleMs) void this.run();
    else this.plan();
  }

  private onMessage(msg: any) {
    if (this.closed || !msg) return;
    if (msg.k === 'w') {
      // another tab's writes (already persisted by it)
      const types = this.store.applyRaw(msg.puts, msg.dels);
      for (const t of types) this.emit('change', { type: t, ids: [], source: msg.local ? 'local' : 'remote' });
      for (const c of msg.conflicts ?? []) this.emit('conflict', c);
      if (msg.local && this.leader) this.scheduleEdit(this.clock.now());
      this.set({});
    } else if (msg.k === 'sync' && this.leader) {
      void this.run().then(() => this.tabs?.post({ k: 'done', id: msg.id }));
    } else if (msg.k === 'done') {
      this.waiters.get(msg.id)?.();
    } else if (msg.k === 'status' && !this.leader) {
      this.status = { ...msg.status, pending: this.store.outbox.size, leader: false };
      this.emit('status', this.status);
    }
  }

  private listen() {
    const g = globalThis as any;
    const add = (target: any, ev: string, fn: () => void) => {
      if (!target?.addEventListener) return;
      target.addEventListener(ev, fn);
      this.unlisten.push(() => target.removeEventListener(ev, fn));
    };
    add(g.window, 'focus', () => this.trigger());
    add(g.document, 'visibilitychange', () => this.visible() && this.trigger());
    add(g.window, 'online', () => this.trigger(true));
    add(g.window, 'offline', () => this.set({ state: 'offline' }));
  }

  /** Focus, visibility, online: sync when the data is stale (or, online, when edits wait). */
  trigger(online = false) {
    if (!this.leader || this.closed) return;
    const now = this.clock.now();
    const last = this.store.meta.lastSyncAt;
    const stale = last == null || now - last > this.sch.staleMs;
    if (online && this.store.outbox.size) {
      this.retryAt = undefined;
      void this.run();
    } else if (stale && !(this.retryAt! > now) && now - this.lastTrigger >= this.sch.focusDebounceMs) {
      this.lastTrigger = now;
      void this.run();
    }
  }

  private visible(): boolean {
    if (this.o.visible) return this.o.visible();
    return (globalThis as any).document?.visibilityState !== 'hidden';
  }

  private online(): boolean {
    if (this.o.online) return this.o.online();
    return (globalThis as any).navigator?.onLine !== false;
  }

  // ---- schedule ------------------------------------------------------------------------

  private paused(now: number) {
    const m = this.store.meta;
    return (m.resumeAt ?? 0) > now;
  }

  private interval(now: number) {
    const active = now - this.store.meta.activeAt < this.sch.inactiveAfterMs;
    return active ? this.sch.activeIntervalMs : this.sch.inactiveIntervalMs;
  }

  /** Sets the one timer to the next thing due: a retry, a push, a poll or the end of a pause. */
  private plan() {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    // Offline, nothing is due: the `online` event (or trigger(true)) resumes.
    if (this.closed || !this.leader || this.authFailed || this.running || !this.online()) return;
    const now = this.clock.now();
    const m = this.store.meta;
    let at: number;
    if (this.retryAt != null) at = this.retryAt;
    else {
      const pushOk = !((m.pushResumeAt ?? 0) > now);
      at = this.paused(now) ? m.resumeAt! : (m.lastSyncAt ?? -Infinity) + this.interval(now);
      if (this.store.outbox.size) at = Math.min(at, pushOk ? (this.pushDue ?? now) : m.pushResumeAt!);
    }
    this.timer = this.clock.setTimeout(() => this.wake(), Math.max(0, at - now));
  }

  private wake() {
    this.timer = undefined;
    const now = this.clock.now();
    const pushDue = this.store.outbox.size > 0 && (this.pushDue ?? now) <= now;
    // A hidden app does not poll; showing it again syncs if stale. Pushes and retries go.
    if (!this.visible() && !pushDue && this.retryAt == null) return;
    this.retryAt = undefined;
    void this.run();
  }

  // ---- the sync loop -------------------------------------------------------------------

  private run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.clock.clearTimeout(this.timer);
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.loop();
        } while (this.again && !this.closed && this.retryAt == null && !this.authFailed);
      } catch (e) {
        // a bug or a failing storage: say so, retry later like any failure
        this.failures++;
        this.retryAt = this.clock.now() + this.sch.retryMaxMs;
        this.set({ state: 'error', error: String((e as Error)?.message ?? e), retryAt: this.retryAt });
      } finally {
        this.running = undefined;
        this.plan();
      }
    })();
    return this.running;
  }

  private async loop() {
    const st = this.store;
    const m = st.meta;
    const s = this.sch;
    let tokenRetried = false;
    let needPull = true;
    let resets = 0;
    this.pushDue = undefined;
    this.firstUnsent = undefined;
    for (let round = 0; round < 1000 && !this.closed; round++) {
      const now = this.clock.now();
      if (!this.online()) return this.set({ state: 'offline' });
      const pullOk = !this.paused(now);
      const pushOk = !((m.pushResumeAt ?? 0) > now);
      const downloading = m.resetting && pullOk;
      const batch = pushOk && !downloading ? st.take(this.maxChanges) : [];
      if (!downloading && !batch.length && !(needPull && pullOk)) break;
      this.set({ state: 'syncing' });
      for (const e of batch) e.s = 1; // from here on it may be applied: never coalesce into it
      let token: string;
      try {
        token = this.token ??= await this.o.getToken();
      } catch {
        this.authFailed = true;
        return this.set({ state: 'error', error: 'token' });
      }
      let r: Reply;
      if (downloading) {
        const failed = await this.download(token);
        if (this.closed) return;
        if (!failed) {
          needPull = true; // then pull from the download's cursor (and push what waits)
          continue;
        }
        r = failed;
      } else {
        const body: Rec = { cursor: m.cursor, changes: batch.map((e) => this.change(e)) };
        if (s.pageLimit) body.limit = s.pageLimit;
        r = await request(this.f, this.clock, `${this.base}/api/sync`, token, body, s.timeoutMs);
      }
      if (this.closed) return;
      const at = this.clock.now();
      const code: string | undefined = typeof r.body?.error === 'string' ? r.body.error : undefined;
      if (r.status === 200 && !downloading && valid(r.body)) {
        this.failures = 0;
        const degraded = r.body.degraded === true;
        const { w, types, conflicts } = st.apply(r.body, batch, degraded);
        if (degraded) {
          // pushes applied, nothing pulled, cursor kept: reads resume after the UTC day
          const t = Number.isFinite(r.body.server_time) ? r.body.server_time : at;
          m.resumeAt = at + (DAY - (t % DAY)) + Math.floor(this.rnd() * 10 * MIN);
          needPull = false;
        } else {
          m.cursor = Math.max(m.cursor, r.body.cursor);
          m.etag = r.body.etag ?? null;
          m.resumeAt = m.pushResumeAt = undefined;
          needPull = r.body.has_more;
          if (!needPull) m.lastSyncAt = at;
          if (types.size) m.activeAt = at;
        }
        w.puts.push(['m', m]);
        this.save(w);
        this.tabs?.post({ k: 'w', ...w, conflicts });
        for (const t of types) this.emit('change', { type: t, ids: [], source: 'remote' });
        for (const c of conflicts) this.emit('conflict', c);
        this.set({ lastSyncAt: m.lastSyncAt });
        continue;
      }
      if (r.status === 401) {
        this.token = undefined;
        if (!tokenRetried) {
          tokenRetried = true;
          continue;
        }
        this.authFailed = true;
        return this.set({ state: 'error', error: 'unauthorized' });
      }
      if ((r.status === 410 || r.status === 409) && resets++ < 2) {
        // reset_required (or a refresh demanded): download everything, keep the outbox
        m.resetting = 1;
        this.save({ puts: [['m', m]], dels: [] });
        needPull = true;
        continue;
      }
      const field = /^changes\[(\d+)\]/.exec(r.body?.field ?? '');
      if ((r.status === 413 && batch.length === 1) || (r.status === 400 && field && batch[+field[1]])) {
        // the server refuses this change for good: drop it, tell the app, re-download
        const e = batch[field ? +field[1] : 0];
        const w: Writes = { puts: [], dels: [] };
        st.reject(e, w);
        m.resetting = 1;
        w.puts.push(['m', m]);
        this.save(w);
        this.tabs?.post({ k: 'w', ...w });
        this.emit('reject', { type: e.t, id: e.id, error: code ?? String(r.status), detail: r.body?.detail });
        needPull = true;
        continue;
      }
      if (r.status === 413 && batch.length > 1) {
        this.maxChanges = Math.max(1, Math.floor(batch.length / 2));
        continue;
      }
      if (r.status === 503 && code === 'degraded') {
        // reads pause until Retry-After; with changes in the request, writes are refused too
        const until = at + (r.retryAfter ?? DAY - (at % DAY));
        m.resumeAt = until;
        if (batch.length) m.pushResumeAt = until;
        this.save({ puts: [['m', m]], dels: [] });
        needPull = false;
        continue;
      }
      // Transient (429, 5xx, timeout, network, a malformed or unexpected answer): back off.
      this.failures++;
      const backoff = Math.round(Math.min(s.retryMaxMs, s.retryBaseMs * 2 ** (this.failures - 1)) * (0.5 + this.rnd() / 2));
      this.retryAt = at + Math.max(r.retryAfter ?? 0, backoff);
      const fatal = r.status >= 400 && r.status < 500 && r.status !== 429 && r.status !== 408;
      return this.set({
        state: fatal ? 'error' : r.failure === 'network' ? 'offline' : 'syncing',
        retryAt: this.retryAt,
        error: code ?? r.failure ?? (r.status === 200 ? 'malformed' : String(r.status)),
      });
    }
    const now = this.clock.now();
    this.retryAt = undefined;
    this.set({ state: this.paused(now) ? 'paused' : 'idle', resumeAt: this.store.meta.resumeAt, retryAt: undefined, error: undefined });
  }

  /**
   * The full download (after 410): every type's live records paged by id, then pull from
   * the first page's cursor. (A POST /api/sync pull from 0 cannot page across a purge
   * horizon: its second page's cursor is older than the horizon and gets 410 again.)
   * Resolves to the failed reply, or undefined when done.
   */
  private async download(token: string): Promise<Reply | undefined> {
    const st = this.store;
    const m = st.meta;
    const seen = new Set<string>();
    let cursor = Infinity;
    for (const t of COLLECTIONS) {
      let after = '';
      for (;;) {
        const q = `limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`;
        const r = await request(this.f, this.clock, `${this.base}/api/sync/${t}?${q}`, token, undefined, this.sch.timeoutMs);
        const b = r.body;
        if (this.closed) return r;
        if (r.status !== 200 || !b || !Array.isArray(b.data) || !Number.isInteger(b.cursor) || typeof b.has_more !== 'boolean') return r;
        if (!after) cursor = Math.min(cursor, b.cursor);
        const w: Writes = { puts: [], dels: [] };
        for (const rec of b.data) {
          if (!rec || typeof rec.id !== 'string') return { ...r, body: undefined };
          seen.add(rkey(t, rec.id));
          if (!st.pending(t, rec.id)) {
            st.table(t).set(rec.id, rec);
            w.puts.push([rkey(t, rec.id), rec]);
          }
        }
        this.save(w);
        if (b.data.length) this.emit('change', { type: t, ids: [], source: 'remote' });
        if (!b.has_more || !b.data.length) break;
        after = b.data.at(-1).id;
      }
    }
    const w: Writes = { puts: [], dels: [] };
    for (const t of st.prune(seen, w)) this.emit('change', { type: t, ids: [], source: 'remote' });
    m.cursor = cursor === Infinity ? 0 : cursor;
    m.resetting = undefined;
    w.puts.push(['m', m]);
    this.save(w);
    this.tabs?.post({ k: 'w', ...w });
    return undefined;
  }

  private get base() {
    return this.o.url.replace(/\/$/, '');
  }

  private change(e: Entry): Rec {
    const v = e.b + 1;
    return e.d
      ? { ...e.d, type: e.t, id: e.id, version: v, device_id: this.store.meta.deviceId }
      : { type: e.t, id: e.id, version: v, deleted: true };
  }

  // ---- status and events ---------------------------------------------------------------

  private set(patch: Partial<Status>) {
    const next: Status = { ...this.status, ...patch, pending: this.store.outbox.size, leader: this.leader };
    if (next.state !== 'paused') delete next.resumeAt;
    for (const k of Object.keys(next) as (keyof Status)[]) if (next[k] === undefined) delete next[k];
    const changed = JSON.stringify(next) !== JSON.stringify(this.status);
    this.status = next;
    if (changed) {
      this.emit('status', next);
      if (this.leader) this.tabs?.post({ k: 'status', status: next });
    }
  }

  private emit<E extends keyof Events>(ev: E, v: Events[E]) {
    for (const fn of this.handlers.get(ev) ?? []) {
      try {
        fn(v);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

/** A 200 body of POST /api/sync the loop can apply; anything else is treated as transient. */
function valid(b: any): boolean {
  const arr = (x: any, f: (v: any) => boolean) => Array.isArray(x) && x.every((v) => v && typeof v === 'object' && f(v));
  const key = (v: any) => typeof v.type === 'string' && typeof v.id === 'string';
  return (
    !!b && typeof b === 'object' &&
    arr(b.applied, (a) => key(a) && Number.isInteger(a.version)) &&
    arr(b.conflicts, key) && arr(b.updates, key) && arr(b.deleted, key) &&
    Number.isInteger(b.cursor) && b.cursor >= 0 && typeof b.has_more === 'boolean'
  );
}

export function createClient(o: ClientOptions): SyncClient {
  return new SyncClient(o);
}

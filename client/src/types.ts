// Public types of the SDK: options, status, events, the storage and clock interfaces.
import type { Collections } from './collections.js';

export type State = 'idle' | 'syncing' | 'offline' | 'paused' | 'error';

export interface Status {
  state: State;
  /** Local changes not yet acknowledged by the server. */
  pending: number;
  /** When the last sync completed (ms), null before the first. */
  lastSyncAt: number | null;
  /** While paused: when pulls resume (the server's Retry-After; next UTC midnight). */
  resumeAt?: number;
  /** After a failed request: when the next attempt is due. */
  retryAt?: number;
  /** Why the last request failed (an error code or "network", "timeout", "malformed"). */
  error?: string;
  /** True in the tab that talks to the server (always true outside browsers). */
  leader: boolean;
}

/** Time source and timers; `virtualClock()` lets tests and the bench drive them. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Persistent key-value storage. `write` must be atomic and durable when it resolves. */
export interface StorageAdapter {
  load(): Promise<Array<[string, unknown]>>;
  write(puts: Array<[string, unknown]>, dels: string[]): Promise<void>;
  close?(): void;
  /** Storages that several tabs share (IndexedDB) name the lock and channel. */
  shared?: string;
}

export interface Schedule {
  /** Wait after the last local change before pushing (Final brief: 5 s). */
  debounceMs: number;
  /** Push at the latest this long after the first unpushed change, however busy. */
  maxWaitMs: number;
  /** Poll interval while the user is active (Final brief: 4 syncs a day). */
  activeIntervalMs: number;
  /** Poll interval once inactive (2 syncs a day). */
  inactiveIntervalMs: number;
  /** No local or remote change for this long makes the user inactive (7 days). */
  inactiveAfterMs: number;
  /** Focus, visibility and `online` sync when the last sync is older (Universal: 3 min). */
  staleMs: number;
  /** At most one focus / visibility triggered sync per this period (Universal: 10 s). */
  focusDebounceMs: number;
  /** Each request is aborted after this long (Universal: 10 s). */
  timeoutMs: number;
  /** Retry backoff: base × 2^(n-1), capped, with jitter; Retry-After is a floor. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Changes per request (default 100, what fits the Free plan's CPU and the server's default MAX_CHANGES; a 413 halves it). */
  maxChanges: number;
  /** Page size asked of the server (undefined: the server's default). */
  pageLimit?: number;
}

export type CollectionName = keyof Collections & string;
export type Input<K extends CollectionName> = Collections[K]['input'];
export type ServerRecord<K extends CollectionName> = Collections[K]['record'];
/** A record as the app sees it: its fields, plus the server's sync fields once synced. */
export type Item<K extends CollectionName> = Input<K> & Partial<ServerRecord<K>>;

export interface ClientOptions {
  /** The worker's origin, e.g. https://sync.example.com */
  url: string;
  /** Returns a JWT; called again once after a 401. */
  getToken: () => string | Promise<string>;
  /** "indexeddb" (browser default), "memory" (Node default) or an adapter. */
  storage?: 'indexeddb' | 'memory' | StorageAdapter;
  /** Storage namespace (one per user in an app that switches users). */
  name?: string;
  fetch?: typeof fetch;
  deviceId?: string;
  schedule?: Partial<Schedule>;
  clock?: Clock;
  /** Jitter source (tests pass a seeded one). */
  random?: () => number;
  /** Share one sync between tabs (Web Locks + BroadcastChannel); default true. */
  tabs?: boolean;
  /** Whether the app is in the foreground (default: document.visibilityState). */
  visible?: () => boolean;
  /** Whether the network is up (default: navigator.onLine). */
  online?: () => boolean;
}

export interface ChangeEvent {
  type: string;
  ids: string[];
  source: 'local' | 'remote';
}

export interface ConflictEvent {
  type: string;
  id: string;
  reason: string;
  /** The local copy the server refused (null: a local delete). */
  local: Record<string, unknown> | null;
  /** The server's copy that replaced it (null: not on the server, or deleted there). */
  server: Record<string, unknown> | null;
}

export interface RejectEvent {
  type: string;
  id: string;
  /** The server's error code and detail for this change (it was dropped from the outbox). */
  error: string;
  detail?: string;
}

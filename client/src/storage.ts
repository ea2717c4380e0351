// Storage adapters: in memory (Node default; tests reuse one across "reloads") and
// IndexedDB (browser default; one database per name, shared by the browser's tabs).
import type { StorageAdapter } from './types.js';

export function memoryStorage(initial?: Iterable<[string, unknown]>): StorageAdapter & { data: Map<string, unknown> } {
  const data = new Map<string, unknown>(initial);
  // Values are copied in and out, as a real store would: no aliasing with live state.
  const copy = <T>(v: T): T => (v === undefined ? v : JSON.parse(JSON.stringify(v)));
  return {
    data,
    load: async () => [...data].map(([k, v]) => [k, copy(v)] as [string, unknown]),
    write: async (puts, dels) => {
      for (const k of dels) data.delete(k);
      for (const [k, v] of puts) data.set(k, copy(v));
    },
  };
}

const done = (r: IDBRequest | IDBTransaction) =>
  new Promise<void>((resolve, reject) => {
    if ('oncomplete' in r) {
      r.oncomplete = () => resolve();
      r.onabort = r.onerror = () => reject(r.error);
    } else {
      r.onsuccess = () => resolve();
      r.onerror = () => reject(r.error);
    }
  });

export function indexedDbStorage(name = 'edgesync'): StorageAdapter {
  const db = new Promise<IDBDatabase>((resolve, reject) => {
    const req = indexedDB.open(`edgesync:${name}`, 1);
    req.onupgradeneeded = () => req.result.createObjectStore('kv');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return {
    shared: name,
    async load() {
      const tx = (await db).transaction('kv');
      const store = tx.objectStore('kv');
      const keys = store.getAllKeys();
      const values = store.getAll();
      await done(tx);
      return (keys.result as string[]).map((k, i) => [k, values.result[i]] as [string, unknown]);
    },
    async write(puts, dels) {
      // strict: the outbox must survive a crash once put() resolved
      const tx = (await db).transaction('kv', 'readwrite', { durability: 'strict' });
      const store = tx.objectStore('kv');
      for (const k of dels) store.delete(k);
      for (const [k, v] of puts) store.put(v, k);
      await done(tx);
    },
    close: () => void db.then((d) => d.close(), () => {}),
  };
}

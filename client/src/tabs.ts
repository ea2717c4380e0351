// Several tabs of one browser: the tab holding the Web Lock syncs, the others learn its
// writes over a BroadcastChannel and hand it theirs. When the syncing tab closes, its lock
// is released and the next waiting tab takes over. Without Web Locks (Node, old
// browsers) or with a storage no other tab sees, a client is its own leader.

export interface Tabs {
  post(msg: unknown): void;
  close(): void;
}

/** Undefined when tabs cannot share (the caller is then its own leader). */
export function joinTabs(name: string | undefined, onLeader: () => void, onMessage: (msg: any) => void): Tabs | undefined {
  const g = globalThis as any;
  if (!name || !g.navigator?.locks || typeof g.BroadcastChannel !== 'function') return undefined;
  const ch = new g.BroadcastChannel(`edgesync:${name}`);
  ch.onmessage = (ev: MessageEvent) => onMessage(ev.data);
  let release: () => void = () => {};
  const ctl = new AbortController();
  g.navigator.locks
    .request(`edgesync:${name}`, { signal: ctl.signal }, () => {
      onLeader();
      return new Promise<void>((r) => (release = r));
    })
    .catch(() => {}); // aborted by close()
  return {
    post: (msg) => ch.postMessage(msg),
    close() {
      ctl.abort();
      release();
      ch.close();
    },
  };
}

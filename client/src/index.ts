// edgesync client SDK: local-first collections synced with an edgesync worker.
//   const sync = createClient({ url, getToken });
//   const tasks = sync.collection('tasks');
//   await tasks.put({ id: 't1', title: 'Buy milk' });
export { createClient, SyncClient, Collection, DEFAULT_SCHEDULE } from './client.js';
export { memoryStorage, indexedDbStorage } from './storage.js';
export { realClock, virtualClock, type VirtualClock } from './clock.js';
export { COLLECTIONS } from './collections.js';
export type * from './collections.js';
export type * from './types.js';

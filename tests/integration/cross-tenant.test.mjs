// Cross-tenant: for every route of the routing table, requests authenticated as user B
// that name user A's record ids (edits and deletes with high versions, delta deletes,
// full uploads replacing the set, downloads after A's ids, changes since 0, conditional
// checks with A's ETag) read and change nothing of A's. Afterwards A's full state and ETag
// are unchanged and no response B got contains any of A's field values. Users whose `sub`
// differs from A's only by case, whitespace, a NUL, a prefix or a LIKE wildcard are other
// users too.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startWorker } from '../helpers/server.mjs';
import { api, newUserId, show, token } from '../helpers/client.mjs';
import { routesFromSource } from '../helpers/source.mjs';
import { TYPES, applyPull, assertUnchanged, check, del, list, note, ok, pullAll, push, setting, snapshot, task } from '../helpers/sync.mjs';

let srv;
before(async () => {
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

const ROUTES = routesFromSource();
const routeOf = (method, p) => {
  const m = method === 'HEAD' ? 'GET' : method;
  const clean = p.split('?')[0].replace(/\/+$/, '') || '/';
  const hits = ROUTES.filter((r) => {
    const re = new RegExp(`^${r.path.replace(/\{type\}/g, '[^/]+').replace(/\./g, '\\.')}$`);
    return re.test(clean);
  });
  const literal = hits.filter((r) => !r.path.includes('{'));
  return (literal.length ? literal : hits).find((r) => r.method === m);
};

/**
 * A's data: every type, several records each, an edited record (version 3), a tombstone,
 * every string field carrying a secret marker that must never reach B.
 */
async function makeVictim(sub = newUserId('alice')) {
  const marker = `A-SECRET-${randomBytes(6).toString('hex')}`;
  const A = api(srv.url, await token(sub));
  const ids = { tasks: ['t1', 't2', 'shared', 'gone'], lists: ['l1', 'shared', 'gone'], notes: ['n1', 'shared', 'gone'], settings: ['theme', 'shared', 'gone'] };
  const make = {
    tasks: (id, v) => task(id, { title: `${marker} task ${id} v${v}`, description: `${marker} desc`, priority: 'high', version: v }),
    lists: (id, v) => list(id, { name: `${marker} list ${id} v${v}`, color: 'red', icon: `${marker}`.slice(0, 30), version: v }),
    notes: (id, v) => note(id, { title: `${marker} note ${id}`, body: `${marker} body v${v}`, pinned: true, version: v }),
    settings: (id, v) => setting(id, { secret: marker, v }, { version: v }),
  };
  await push(A, TYPES.flatMap((t) => ids[t].map((id) => make[t](id, 1))));
  await push(A, TYPES.flatMap((t) => [make[t](ids[t][0], 2)]));
  await push(A, TYPES.flatMap((t) => [make[t](ids[t][0], 3), del(t, 'gone', { version: 2 })]));
  const downloads = {};
  const changes = {};
  for (const t of TYPES) {
    downloads[t] = ok(await A.get(`/api/sync/${t}?limit=1000`)).data;
    changes[t] = ok(await A.get(`/api/sync/${t}/changes?since=0&limit=1000`)).changes;
  }
  const snap = await snapshot(A);
  assert.ok(snap.entries.length >= 13, `A has data: ${snap.entries.length}`);
  assert.ok(JSON.stringify(snap.entries).includes(marker));
  return { A, sub, ids, marker, snap, downloads, changes };
}

async function assertVictimUnchanged(v, what) {
  await assertUnchanged(v.A, v.snap, what);
  for (const t of TYPES) {
    assert.deepEqual(ok(await v.A.get(`/api/sync/${t}?limit=1000`)).data, v.downloads[t], `A's ${t} download changed after ${what}`);
    assert.deepEqual(ok(await v.A.get(`/api/sync/${t}/changes?since=0&limit=1000`)).changes, v.changes[t], `A's ${t} changes changed after ${what}`);
  }
}

/** A client for `sub` that records every response and which route it hit. */
async function attacker(sub) {
  const c = api(srv.url, await token(sub));
  const seen = [];
  const hit = new Set();
  const request = async (method, p, opts) => {
    const res = await c.request(method, p, opts);
    assert.ok(res.status < 500, `${method} ${p} as ${JSON.stringify(sub)}: ${show(res)}`);
    const r = routeOf(method, p);
    if (r) hit.add(`${r.method} ${r.path}`);
    const hdrs = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n');
    seen.push({ what: `${method} ${p}`, text: `${hdrs}\n${res.text}` });
    return res;
  };
  return {
    sub,
    seen,
    hit,
    get: (p, o) => request('GET', p, o),
    head: (p, o) => request('HEAD', p, o),
    post: (p, body, o = {}) => request('POST', p, { ...o, body }),
    sync: (body, o) => request('POST', '/api/sync', { ...o, body }),
  };
}

function assertNothingOfA(B, v) {
  for (const { what, text } of B.seen) {
    assert.ok(!text.includes(v.marker), `${what} as ${JSON.stringify(B.sub)} returned A's data:\n${text.slice(0, 2000)}`);
  }
}

const HIGH = 1_000_000;
const bTask = (id, f = {}) => task(id, { title: `BOB task ${id}`, ...f });
const bRecord = (t, id, f = {}) =>
  ({ tasks: bTask(id, f), lists: list(id, { name: `BOB list ${id}`, ...f }), notes: note(id, { body: `BOB ${id}`, ...f }), settings: setting(id, 'BOB', f) })[t];

describe('user B naming user A\'s ids reaches nothing of A, on every route', () => {
  test('every route, every trick', async () => {
    const v = await makeVictim();
    const B = await attacker(newUserId('bob'));
    const aTag = v.snap.etag;
    const aCursor = v.snap.cursor;

    // Reads before B has any data: B's state is empty, whatever A's is.
    const c0 = ok(await B.get('/api/sync/check'));
    assert.equal(c0.cursor, 0, 'a fresh user B starts at cursor 0');
    for (const p of ['/api/sync/check', '/sync/check']) {
      for (const inm of [aTag, `W/${aTag}`, `"x", ${aTag}`]) {
        const res = await B.get(p, { headers: { 'if-none-match': inm } });
        assert.equal(res.status, 200, `B's check with A's tag ${inm} must not match B's empty state: ${show(res)}`);
        assert.notEqual(res.headers.get('etag'), aTag);
      }
      await B.head(p);
    }
    const emptyPull = ok(await B.sync({ cursor: 0 }));
    assert.deepEqual([emptyPull.updates, emptyPull.deleted], [[], []]);
    for (const t of TYPES) {
      for (const id of ['', ...v.ids[t]]) {
        const after = id ? `&after=${encodeURIComponent(id.slice(0, -1))}` : '';
        const d = ok(await B.get(`/api/sync/${t}?limit=1${after}`));
        assert.deepEqual(d.data, [], `B's download after ${id} is empty`);
      }
      for (const since of [0, 1, aCursor - 1000]) {
        const ch = ok(await B.get(`/api/sync/${t}/changes?since=${Math.max(0, since)}`));
        assert.equal(ch.total_changes, 0, show({ status: 200, headers: new Headers(), text: JSON.stringify(ch) }));
      }
      await B.get(`/api/sync/${t}?after=${v.ids[t][0]}`, { headers: { 'if-none-match': aTag } });
      await B.get(`/api/sync/${t}/changes?since=0`, { headers: { 'if-none-match': aTag } });
      await B.head(`/api/sync/${t}?limit=5`);
    }

    // Writes naming A's ids: edits and deletes with high versions, versionless, via both
    // push paths, the delta push, and full uploads.
    for (const [round, p] of ['/api/sync', '/sync'].entries()) {
      const hi = HIGH * 10 * (round + 1); // above anything B wrote in the round before
      const r1 = ok(await B.post(p, { cursor: aCursor, changes: TYPES.flatMap((t) => v.ids[t].slice(0, 2).map((id) => bRecord(t, id, { version: hi }))) }));
      assert.deepEqual(r1.conflicts, [], `B's high versions of A's ids create B's own records: ${JSON.stringify(r1).slice(0, 1500)}`);
      const r2 = ok(await B.post(p, { cursor: 0, changes: TYPES.map((t) => del(t, v.ids[t][2], { version: hi })) }));
      assert.deepEqual(r2.conflicts, []);
      const r3 = ok(await B.post(p, { cursor: 0, changes: TYPES.map((t) => bRecord(t, 'gone')) }));
      assert.deepEqual(r3.conflicts, []);
      // stale versions of A's ids: any conflict shows B's own record, never A's
      const r4 = ok(await B.post(p, { cursor: 0, changes: TYPES.map((t) => bRecord(t, v.ids[t][0], { version: 1 })) }));
      for (const cf of r4.conflicts) assert.ok(cf.server === null || !JSON.stringify(cf.server).includes('A-SECRET'), JSON.stringify(cf));
    }
    for (const t of TYPES) {
      const ids = v.ids[t];
      const d1 = ok(await B.post(`/api/sync/${t}/delta`, { changes: {
        created: [bRecord(t, `${ids[0]}`, { version: HIGH * 100 })],
        updated: [bRecord(t, ids[1], { version: HIGH * 100 })],
        deleted: [ids[2], { id: 'gone', version: HIGH * 100 }],
      }, cursor: aCursor }));
      assert.deepEqual(d1.conflicts, [], JSON.stringify(d1));
      const d2 = ok(await B.post(`/api/sync/${t}/delta`, { changes: { deleted: ids.map((id) => ({ id, version: HIGH * 200 })) } }));
      assert.deepEqual(d2.conflicts, [], JSON.stringify(d2));
      // full upload replacing the set with A's ids, then with nothing (tombstones B's)
      const { cursor } = ok(await B.get('/api/sync/check'));
      ok(await B.post(`/api/sync/${t}`, { data: ids.map((id) => bRecord(t, id)), cursor }));
      const c2 = ok(await B.get('/api/sync/check')).cursor;
      ok(await B.post(`/api/sync/${t}`, { data: [], timestamp: c2 }));
      // a stale full upload is refused for B's own newer data, not A's
      const stale = await B.post(`/api/sync/${t}`, { data: [], cursor: 1 });
      assert.equal(stale.status, 409, show(stale));
    }

    // Everything B can read now is B's own.
    const mine = applyPull(new Map(), await pullAll(B, 0));
    for (const [key, rec] of mine) assert.ok(!JSON.stringify(rec).includes('A-SECRET'), `${key}: ${JSON.stringify(rec)}`);
    for (const t of TYPES) {
      await B.get(`/api/sync/${t}?limit=1000`);
      await B.get(`/api/sync/${t}/changes?since=0&limit=1000`);
    }

    // The admin route does not take B's JWT; the public routes carry no user data.
    const adm = await B.get('/api/admin/usage');
    assert.equal(adm.status, 401, show(adm));
    // Nor the export: B cannot read A's records through it.
    const exp = await B.get(`/api/admin/records?user=${encodeURIComponent(v.sub)}`);
    assert.equal(exp.status, 401, show(exp));
    assert.ok(!exp.text.includes(v.marker), show(exp));
    // Nor the reshard route: B can neither see where A's pages are nor move them.
    for (const step of [{ step: 'locate', user: v.sub }, { step: 'begin', user: v.sub, to: 'DB_1' }]) {
      const r = await B.post('/api/admin/reshard', step);
      assert.equal(r.status, 401, show(r));
    }
    ok(await B.get('/api/health'));
    ok(await B.get('/api/openapi.json'));
    // The development sign-in (DEV_MODE, on in tests) signs a token for the name asked
    // for; asked for B's own name it hands B nothing of A.
    const dev = ok(await B.post('/api/dev/login', { user: B.sub }));
    assert.equal(dev.user, B.sub, JSON.stringify(dev));

    const missing = ROUTES.map((r) => `${r.method} ${r.path}`).filter((r) => !B.hit.has(r));
    assert.deepEqual(missing, [], 'every route of crates/core/src/endpoints.rs was exercised by B');
    assertNothingOfA(B, v);
    await assertVictimUnchanged(v, 'B\'s requests');
    assert.equal((await check(v.A)).etag, aTag, 'A\'s ETag is unchanged');
  });

  test('subs that differ from A\'s only by case, whitespace, NUL, prefix or wildcards are other users', async () => {
    const v = await makeVictim(newUserId('Alice'));
    const a = v.sub;
    const lookalikes = [a.toUpperCase(), a.toLowerCase(), `${a} `, ` ${a}`, `${a}\u0000`, `${a}\n`, a.slice(0, -1), `${a}x`,
      `${a.slice(0, -1)}%`, `${a.slice(0, -1)}_`, '%', `' OR '1'='1`, `${a}' --`, a.normalize('NFD') === a ? `${a}\u0301` : a.normalize('NFD')];
    for (const sub of lookalikes) {
      assert.notEqual(sub, a);
      const B = await attacker(sub);
      const c = ok(await B.get('/api/sync/check'));
      assert.equal(c.cursor, 0, `${JSON.stringify(sub)} is a fresh user: ${JSON.stringify(c)}`);
      const res = await B.get('/api/sync/check', { headers: { 'if-none-match': v.snap.etag } });
      assert.equal(res.status, 200, show(res));
      const pulled = ok(await B.sync({ cursor: 0 }));
      assert.deepEqual([pulled.updates, pulled.deleted], [[], []], JSON.stringify(sub));
      for (const t of TYPES) {
        assert.deepEqual(ok(await B.get(`/api/sync/${t}`)).data, [], `${JSON.stringify(sub)} ${t}`);
        assert.equal(ok(await B.get(`/api/sync/${t}/changes?since=0`)).total_changes, 0);
      }
      // a write by the look-alike lands in its own space
      const r = ok(await B.sync({ cursor: 0, changes: [bTask(v.ids.tasks[0], { version: HIGH })] }));
      assert.deepEqual(r.conflicts, []);
      ok(await B.post('/api/sync/tasks/delta', { changes: { deleted: v.ids.tasks } }));
      assertNothingOfA(B, v);
    }
    await assertVictimUnchanged(v, 'look-alike users\' requests');
  });
});

// A scripted HTTP server for the SDK's Node tests: every request is recorded and answered
// by the test's handler, which returns {status, body, headers}, 'hang' (never answer: the
// client's timeout fires) or 'reset' (the connection is destroyed: a network error).
import http from 'node:http';

export async function scriptedServer(handler) {
  const requests = [];
  const hung = new Set();
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', async () => {
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
      const entry = { method: req.method, path: req.url, headers: req.headers, body, raw };
      requests.push(entry);
      let answer;
      try {
        answer = await handler(entry);
      } catch (e) {
        answer = { status: 599, body: { error: 'test handler threw', detail: String(e) } };
      }
      entry.answer = answer;
      if (answer === 'hang') {
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      }
      if (answer === 'reset') {
        req.socket.destroy();
        return;
      }
      const text = typeof answer.body === 'string' ? answer.body : answer.body === undefined ? '' : JSON.stringify(answer.body);
      res.writeHead(answer.status, { 'content-type': answer.status >= 400 ? 'application/problem+json' : 'application/json', ...answer.headers });
      res.end(text);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () =>
      new Promise((r) => {
        for (const res of hung) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A deterministic PRNG (mulberry32) and the seed in use: EDGESYNC_SEED replays a failure. */
export function seeded(defaultSeed) {
  const seed = Number(process.env.EDGESYNC_SEED ?? defaultSeed);
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { seed, next, int: (n) => Math.floor(next() * n), pick: (xs) => xs[Math.floor(next() * xs.length)] };
}

// HTTP client helpers for the integration tests. Tokens are minted with `jose`, an
// independent JWT library, never with worker code.
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { TEST_JWT_SECRET } from './server.mjs';

const enc = new TextEncoder();
const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** A fresh random user id, so tests sharing one server never see each other's data. */
export function newUserId(prefix = 'u') {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

/** A random record id (valid per the contract: [A-Za-z0-9_.:-]). */
export function rid(prefix = 'r') {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/**
 * Mints an HS256 JWT for `userId` (the `sub`).
 * @param {string|null} userId  `null` leaves `sub` out
 * @param {{secret?: string, ttl?: number, exp?: number, iat?: number, nbf?: number,
 *          alg?: string, claims?: object, header?: object}} [opts]
 *   ttl: seconds from now to exp (default 3600; negative = already expired);
 *   exp: absolute exp (seconds) overriding ttl, `null` = no exp claim.
 */
export async function token(userId, opts = {}) {
  const { secret = TEST_JWT_SECRET, ttl = 3600, alg = 'HS256', claims = {}, header = {} } = opts;
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg, typ: 'JWT', ...header });
  if (userId !== null) jwt.setSubject(userId);
  jwt.setIssuedAt(opts.iat ?? now);
  const exp = 'exp' in opts ? opts.exp : now + ttl;
  if (exp !== null) jwt.setExpirationTime(exp);
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(enc.encode(secret));
}

/** An unsigned `alg: none` token, crafted by hand (jose refuses to make one). */
export function noneToken(userId, { ttl = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: userId, iat: now, exp: now + ttl })}.`;
}

/**
 * Parses the `X-Sync-Ops` header (RFC 8941 dictionary of integers), e.g.
 * `d1=2, rows-read=3, rows-written=0, kv-read=0, kv-write=0` → {d1: 2, 'rows-read': 3, ...}.
 * Throws on a value that is not an sf-integer, so a malformed header fails the test.
 */
export function parseOps(headerValue) {
  if (headerValue == null) throw new Error('X-Sync-Ops header missing');
  const out = {};
  for (const member of headerValue.split(',')) {
    const m = member.trim();
    if (!m) continue;
    const [keyPart] = m.split(';'); // ignore parameters
    const eq = keyPart.indexOf('=');
    const key = (eq < 0 ? keyPart : keyPart.slice(0, eq)).trim();
    if (!/^[a-z*][a-z0-9_\-.*]*$/.test(key)) throw new Error(`bad X-Sync-Ops key ${JSON.stringify(key)} in ${headerValue}`);
    if (eq < 0) {
      out[key] = true;
      continue;
    }
    const val = keyPart.slice(eq + 1).trim();
    if (!/^-?\d{1,15}$/.test(val)) throw new Error(`bad X-Sync-Ops value ${JSON.stringify(val)} for ${key} in ${headerValue}`);
    out[key] = Number(val);
  }
  return out;
}

/**
 * wrangler dev's own proxy answers 503 text/plain "Your worker restarted mid-request" when
 * reloads the worker (one of its file watchers fired) while a non-GET request was in
 * flight; the worker itself never answers text/plain 503 (its 503s are problem+json
 * `busy`). The client retries exactly this, as a real client retries a connection reset:
 * a push that did commit comes back as a replay or a stale_version conflict, a pull is a read.
 */
function devProxyRestart(res, text) {
  return res.status === 503 && /^text\/plain/.test(res.headers.get('content-type') || '') && text.startsWith('Your worker restarted mid-request');
}

/**
 * A small API client. `tok` may be a JWT string, or null for unauthenticated requests.
 * Every method resolves to {status, headers, body, text} where body is the parsed JSON
 * (or null when the body is empty or not JSON).
 *   body: an object/array is JSON-encoded with `Content-Type: application/json`;
 *         a string or Buffer is sent as is (set the content type yourself in headers).
 */
export function api(url, tok) {
  async function request(method, p, { body, headers = {} } = {}) {
    const h = { ...headers };
    if (tok && !Object.keys(h).some((k) => k.toLowerCase() === 'authorization')) h.authorization = `Bearer ${tok}`;
    let payload;
    if (body !== undefined) {
      if (typeof body === 'string' || Buffer.isBuffer(body) || body instanceof Uint8Array) {
        payload = body;
      } else {
        payload = JSON.stringify(body);
        if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
      }
    }
    let res;
    let text;
    for (let attempt = 0; ; attempt++) {
      try {
        res = await fetch(url + p, { method, headers: h, body: payload, signal: AbortSignal.timeout(60_000) });
      } catch (e) {
        // undici can send on a keep-alive connection the dev server closed while this
        // process's event loop was busy: retried like a reset (see devProxyRestart)
        if (!['UND_ERR_SOCKET', 'ECONNRESET'].includes(e?.cause?.code) || attempt >= 3) throw e;
        console.error(`[client] connection closed under ${method} ${p} (${e.cause.message}); sending it again`);
        continue;
      }
      text = await res.text();
      if (!devProxyRestart(res, text) || attempt >= 3) break;
      console.error(`[client] wrangler dev reloaded its worker mid-request (${method} ${p}); sending it again`);
    }
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    return { status: res.status, headers: res.headers, body: json, text };
  }
  return {
    request,
    get: (p, o) => request('GET', p, o),
    head: (p, o) => request('HEAD', p, o),
    post: (p, body, o = {}) => request('POST', p, { ...o, body }),
    put: (p, body, o = {}) => request('PUT', p, { ...o, body }),
    delete: (p, o) => request('DELETE', p, o),
    /** POST /api/sync; asserts nothing. */
    sync: (req = {}, o) => request('POST', '/api/sync', { ...o, body: req }),
  };
}

/** A user with a token and client: `const a = await user(srv.url)`. */
export async function user(url, userId = newUserId()) {
  const tok = await token(userId);
  return { id: userId, token: tok, ...api(url, tok) };
}

/** Two devices (clients with their own tokens) of one new user: `[A, B]`. */
export async function twoDevices(url, userId = newUserId()) {
  return [api(url, await token(userId)), api(url, await token(userId))];
}

/** Describes a response for assertion messages. */
export function show(res) {
  const hdrs = {};
  for (const k of ['content-type', 'etag', 'x-sync-ops', 'www-authenticate', 'cache-control', 'vary']) {
    const v = res.headers?.get?.(k);
    if (v != null) hdrs[k] = v;
  }
  const t = res.text ?? '';
  return `HTTP ${res.status} ${JSON.stringify(hdrs)} ${t.length > 1500 ? t.slice(0, 1500) + '…' : t}`;
}

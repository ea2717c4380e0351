// Asymmetric JWT keys for the tests: RS256 / ES256 key pairs made with jose, a JWKS of
// their public halves (the worker's `JWT_JWKS`), tokens signed with them, and hand-made
// tokens for algorithm-confusion attacks. Never worker code.
import { webcrypto } from 'node:crypto';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';

const enc = new TextEncoder();
export const b64url = (x) =>
  Buffer.from(typeof x === 'string' || x instanceof Uint8Array ? x : JSON.stringify(x)).toString('base64url');

/**
 * A key pair for `alg` ('RS256' or 'ES256') with a `kid`; `jwk` is the public JWK as a
 * JWKS entry (kid, alg, use: sig), `pem` the public key as SPKI PEM text.
 */
export async function makeKey(alg, kid) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  const pem = await exportSPKI(publicKey);
  return { alg, kid, publicKey, privateKey, jwk, pem };
}

/** `{"keys": [...]}` of the given keys' public JWKs, as the JSON text of `JWT_JWKS`. */
export const jwksOf = (...keys) => JSON.stringify({ keys: keys.map((k) => k.jwk) });

/**
 * Signs a JWT with jose. `key` is a key from makeKey (its alg and kid are used unless
 * `alg` / `kid` override them; `kid: null` leaves it out), or {secret} for HS256.
 *   sub: null leaves sub out; ttl: seconds to exp; exp: absolute (null = no exp);
 *   nbf: absolute; claims: extra claims (iss, aud, padding, …).
 */
export async function signWith(key, sub, opts = {}) {
  const now = Math.floor(Date.now() / 1000);
  const { ttl = 3600, claims = {} } = opts;
  const alg = opts.alg ?? key.alg ?? 'HS256';
  const header = { alg, typ: 'JWT' };
  const kid = 'kid' in opts ? opts.kid : key.kid;
  if (kid != null) header.kid = kid;
  const jwt = new SignJWT({ ...claims }).setProtectedHeader(header).setIssuedAt(now);
  if (sub !== null) jwt.setSubject(sub);
  const exp = 'exp' in opts ? opts.exp : now + ttl;
  if (exp !== null) jwt.setExpirationTime(exp);
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  const signingKey = key.secret !== undefined ? (typeof key.secret === 'string' ? enc.encode(key.secret) : key.secret) : key.privateKey;
  return jwt.sign(signingKey);
}

/** Standard claims (iat, exp one hour ahead) plus `extra`, for hand-made tokens. */
export function claimsFor(sub, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub, iat: now, exp: now + 3600, ...extra };
}

/**
 * A compact JWS with any header, signed by WebCrypto with `privateKey` over
 * `b64(header).b64(payload)` — jose refuses to put e.g. `alg: RS256` on an ES256
 * signature, so confusion attacks are made by hand. ECDSA signatures come out raw (r||s),
 * as JWS wants them.
 */
export async function handSigned(header, payload, privateKey) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const algo = privateKey.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: privateKey.algorithm.name };
  const sig = new Uint8Array(await webcrypto.subtle.sign(algo, privateKey, enc.encode(input)));
  return `${input}.${b64url(sig)}`;
}

/** An HS256 JWS keyed with arbitrary bytes/text (e.g. a public key's PEM), by hand. */
export async function hmacSigned(header, payload, secret) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const keyBytes = typeof secret === 'string' ? enc.encode(secret) : secret;
  const k = await webcrypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const sig = new Uint8Array(await webcrypto.subtle.sign('HMAC', k, enc.encode(input)));
  return `${input}.${b64url(sig)}`;
}

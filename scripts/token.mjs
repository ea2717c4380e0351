#!/usr/bin/env node
// Prints a dev JWT (HS256) for a user, signed with JWT_SECRET from .dev.vars (or the
// environment), using jose. Usage: npm run token -- <user-id> [--ttl 3600]
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';

const args = process.argv.slice(2);
const ttlAt = args.indexOf('--ttl');
const ttl = ttlAt >= 0 ? Number(args[ttlAt + 1]) : 3600;
const user = args.find((a, i) => !a.startsWith('--') && (ttlAt < 0 || i !== ttlAt + 1));
if (!user || !Number.isInteger(ttl) || ttl <= 0) {
  console.error('usage: npm run token -- <user-id> [--ttl seconds]');
  process.exit(2);
}

function secret() {
  if (process.env.JWT_SECRET) return process.env.JWT_SECRET;
  try {
    const vars = readFileSync(new URL('../.dev.vars', import.meta.url), 'utf8');
    const line = vars.split('\n').find((l) => l.startsWith('JWT_SECRET='));
    if (line) return line.slice('JWT_SECRET='.length).trim().replace(/^"|"$/g, '');
  } catch {}
  console.error('no JWT_SECRET: run `npm run setup` (creates .dev.vars) or set JWT_SECRET');
  process.exit(1);
}

const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({})
  .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  .setSubject(user)
  .setIssuedAt(now)
  .setExpirationTime(now + ttl)
  .sign(new TextEncoder().encode(secret()));
console.log(token);

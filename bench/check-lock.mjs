// Fails when a crate that both the worker and bench/native lock resolves to different
// versions, or when bench/native's [profile.bench] builds code differently from the
// worker's [profile.release] (opt-level, lto, codegen-units, and each package's own
// opt-level): the micro-benchmarks must measure the code the worker ships.
// (bench/native/Cargo.lock began as a copy of Cargo.lock; criterion's own crates are extra.)
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './lib/common.mjs';

function lock(file) {
  const text = fs.readFileSync(file, 'utf8');
  const out = new Map();
  for (const m of text.matchAll(/\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"/g)) {
    if (!out.has(m[1])) out.set(m[1], new Set());
    out.get(m[1]).add(m[2]);
  }
  return out;
}
const root = lock(path.join(ROOT, 'Cargo.lock'));
const bench = lock(path.join(ROOT, 'bench', 'native', 'Cargo.lock'));
const differ = [];
for (const [name, versions] of bench) {
  if (!root.has(name) || name === 'edgesync-bench') continue;
  for (const v of versions) if (!root.get(name).has(v)) differ.push(`${name} ${v} (worker: ${[...root.get(name)].join(', ')})`);
}
if (differ.length) {
  console.error(`bench/native/Cargo.lock resolves crates the worker also uses to other versions:\n  ${differ.join('\n  ')}\n` +
    'Copy Cargo.lock over bench/native/Cargo.lock and run `cargo bench --no-run --manifest-path bench/native/Cargo.toml` to re-resolve criterion on top of it.');
  process.exit(1);
}
const shared = [...bench.keys()].filter((n) => root.has(n)).length;
console.error(`[bench] bench/native/Cargo.lock: ${shared} crates shared with the worker, all at the worker's versions`);

// The settings of `[profile.<name>]` and of its `[profile.<name>.package.<crate>]` tables
// that decide the generated code, as "key = value" lines keyed by table.
function profile(file, name) {
  const out = new Map();
  let table = null;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const head = line.match(/^\[(.+)\]\s*$/);
    if (head) {
      const t = head[1];
      table = t === `profile.${name}` ? '' : t.startsWith(`profile.${name}.package.`) ? t.slice(`profile.${name}.`.length) : null;
      continue;
    }
    const kv = line.match(/^(opt-level|lto|codegen-units)\s*=\s*(\S+)/);
    if (table !== null && kv) out.set(`${table ? `[${table}] ` : ''}${kv[1]}`, kv[2]);
  }
  return out;
}
const release = profile(path.join(ROOT, 'Cargo.toml'), 'release');
const benchProfile = profile(path.join(ROOT, 'bench', 'native', 'Cargo.toml'), 'bench');
const unlike = [...new Set([...release.keys(), ...benchProfile.keys()])]
  .filter((k) => release.get(k) !== benchProfile.get(k))
  .map((k) => `${k}: worker ${release.get(k) ?? '(unset)'}, bench/native ${benchProfile.get(k) ?? '(unset)'}`);
if (unlike.length) {
  console.error(`bench/native/Cargo.toml's [profile.bench] differs from the worker's [profile.release]:\n  ${unlike.join('\n  ')}`);
  process.exit(1);
}
console.error(`[bench] bench/native's [profile.bench] builds as the worker's [profile.release] (${[...release].map(([k, v]) => `${k} = ${v}`).join(', ')})`);

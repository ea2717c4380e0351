// Drops, in place, the exports of wasm-bindgen classes that the worker's dependencies
// declare and edgesync never hands to JavaScript: workers-rs's ContainerStartupOptions,
// MinifyConfig and R2Range (containers, the legacy minify setting, R2 ranges) and
// wasm-streams' IntoUnderlyingSource, IntoUnderlyingByteSource and IntoUnderlyingSink
// (Rust streams as JS streams; edgesync reads and writes bodies as bytes). wasm-bindgen
// exports every such class's methods, so the linker and wasm-opt keep their code and
// everything it calls (about 22 KB raw). Without the exports wasm-opt removes it.
//
// Safe because nothing can reach that code any more: JavaScript meets an instance of
// one of these classes only if the wasm creates one and passes it out, which goes through
// the class's `__wrap` in the glue, and this refuses to run when the glue has one. The
// classes stay in the glue, unused (the worker's entry, crates/worker/js/entry.mjs,
// exports only its own default). Run by scripts/wasm-opt.sh before wasm-opt.
//
//   node scripts/wasm-exports.mjs build/index_bg.wasm
import fs from 'node:fs';
import path from 'node:path';
import { Cursor, sections, uleb } from './lib/wasm.mjs';

/** The classes, as wasm-bindgen spells them in export names (lower case, no separators). */
const DEAD = ['containerstartupoptions', 'minifyconfig', 'r2range', 'intounderlyingsource', 'intounderlyingbytesource', 'intounderlyingsink'];
const dead = (name) => DEAD.some((c) => name.startsWith(`${c}_`) || name.includes(`_${c}_`));

const [wasmPath] = process.argv.slice(2);
if (!wasmPath) throw new Error('usage: node scripts/wasm-exports.mjs <module.wasm>');
// The check needs the glue wasm-bindgen wrote beside the module (worker-build: index.js).
const glue = path.join(path.dirname(wasmPath), 'index.js');
if (!fs.existsSync(glue)) throw new Error(`${glue} is missing: without the glue there is no checking that the dropped exports are unused`);
// `static __wrap(ptr)` is how the glue turns a pointer the wasm returns into an object.
if (/__wrap\b/.test(fs.readFileSync(glue, 'utf8'))) {
  throw new Error(`${glue} wraps wasm objects for JavaScript now (__wrap): check that none is of ${DEAD.join(', ')} before dropping their exports`);
}

const b = fs.readFileSync(wasmPath);
const parts = [b.subarray(0, 8)];
const dropped = [];
for (const s of sections(b, wasmPath)) {
  if (s.id !== 7) {
    parts.push(b.subarray(s.from, s.end));
    continue;
  }
  const c = new Cursor(b, s.start);
  const n = c.leb();
  const kept = [];
  for (let i = 0; i < n; i++) {
    const from = c.at;
    const name = c.str();
    c.at++; // kind
    c.leb(); // index
    if (dead(name)) dropped.push(name);
    else kept.push(b.subarray(from, c.at));
  }
  const body = Buffer.concat([uleb(kept.length), ...kept]);
  parts.push(Buffer.from([7]), uleb(body.length), body);
}
fs.writeFileSync(wasmPath, Buffer.concat(parts));
console.error(`[build] ${dropped.length} exports of unused wasm-bindgen classes dropped before wasm-opt (scripts/wasm-exports.mjs)`);

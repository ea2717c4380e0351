// Takes the `name` custom section out of the worker's wasm (worker-build keeps it: it runs
// wasm-opt with --debuginfo) and writes the function names it held beside it, as JSON
// (index → name), for bench/profile.mjs to name the profile's wasm frames with. The names
// are about 12% of the gzipped wasm and nothing at run time needs them (a panic's JS stack
// then shows wasm-function[N]: look N up in the JSON). Nothing else in the module changes,
// so function indices are the same with and without the section.
//
//   node scripts/wasm-names.mjs build/index_bg.wasm build/wasm-names.json
import fs from 'node:fs';
import { functionNames, sections } from './lib/wasm.mjs';

const [wasmPath, namesPath] = process.argv.slice(2);
if (!wasmPath || !namesPath) throw new Error('usage: node scripts/wasm-names.mjs <module.wasm> <names.json>');
const b = fs.readFileSync(wasmPath);
const kept = [b.subarray(0, 8)];
let names = null;
for (const s of sections(b, wasmPath)) {
  if (s.id === 0 && s.name === 'name') names = functionNames(b, s);
  else kept.push(b.subarray(s.from, s.end));
}
if (!names) {
  // Already stripped (a build step run twice): keep the names written the first time.
  if (!fs.existsSync(namesPath)) throw new Error(`${wasmPath} has no name section and ${namesPath} is missing`);
  process.exit(0);
}
fs.writeFileSync(namesPath, JSON.stringify(names));
fs.writeFileSync(wasmPath, Buffer.concat(kept));
console.error(`[build] wasm name section moved to ${namesPath} (${Object.keys(names).length} functions): ${b.length} → ${Buffer.concat(kept).length} bytes`);

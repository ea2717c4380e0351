// Takes the `name` custom section out of the worker's wasm (worker-build keeps it: it runs
// wasm-opt with --debuginfo) and writes the function names it held beside it, as JSON
// (index → name), for bench/profile.mjs to name the profile's wasm frames with. The names
// are about 12% of the gzipped wasm and nothing at run time needs them (a panic's JS stack
// then shows wasm-function[N]: look N up in the JSON). Nothing else in the module changes,
// so function indices are the same with and without the section.
//
//   node scripts/wasm-names.mjs build/index_bg.wasm build/wasm-names.json
import fs from 'node:fs';

const [wasmPath, namesPath] = process.argv.slice(2);
if (!wasmPath || !namesPath) throw new Error('usage: node scripts/wasm-names.mjs <module.wasm> <names.json>');
const b = fs.readFileSync(wasmPath);
if (b.readUInt32LE(0) !== 0x6d736100) throw new Error(`${wasmPath} is not a wasm module`);
let i = 8;
const leb = () => {
  let r = 0;
  let s = 0;
  let x;
  do {
    x = b[i++];
    r += (x & 0x7f) * 2 ** s;
    s += 7;
  } while (x & 0x80);
  return r;
};
const kept = [b.subarray(0, 8)];
const names = {};
let found = false;
while (i < b.length) {
  const from = i;
  const id = b[i++];
  const len = leb();
  const start = i;
  const end = start + len;
  let isName = false;
  if (id === 0) {
    const nl = leb();
    isName = b.subarray(i, i + nl).toString() === 'name';
    i += nl;
    if (isName) {
      found = true;
      while (i < end) {
        const sub = b[i++];
        const sl = leb();
        const subEnd = i + sl;
        if (sub === 1) {
          for (let n = leb(); n > 0; n--) {
            const idx = leb();
            const l = leb();
            names[idx] = b.subarray(i, i + l).toString();
            i += l;
          }
        }
        i = subEnd;
      }
    }
  }
  if (!isName) kept.push(b.subarray(from, end));
  i = end;
}
if (!found) {
  // Already stripped (a build step run twice): keep the names written the first time.
  if (!fs.existsSync(namesPath)) throw new Error(`${wasmPath} has no name section and ${namesPath} is missing`);
  process.exit(0);
}
fs.writeFileSync(namesPath, JSON.stringify(names));
fs.writeFileSync(wasmPath, Buffer.concat(kept));
console.error(`[build] wasm name section moved to ${namesPath} (${Object.keys(names).length} functions): ${b.length} → ${Buffer.concat(kept).length} bytes`);

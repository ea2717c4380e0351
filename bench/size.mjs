// Size of the built worker: build/index_bg.wasm raw and gzipped (what the Free plan's
// compressed-size limit is measured on), and the JS glue. Writes bench/results/size.json.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ROOT, log, writeResult } from './lib/common.mjs';

const file = (p) => path.join(ROOT, 'build', p);
const wasmPath = file('index_bg.wasm');
if (!fs.existsSync(wasmPath)) throw new Error('build/index_bg.wasm is missing: run bash scripts/build.sh');
const wasm = fs.readFileSync(wasmPath);
const glue = ['index.js', 'worker/shim.mjs'].filter((p) => fs.existsSync(file(p))).map((p) => fs.readFileSync(file(p)));
const gz = (buf, level) => zlib.gzipSync(buf, { level }).length;
const all = Buffer.concat([wasm, ...glue]);
const out = {
  wasm: { raw: wasm.length, gzip9: gz(wasm, 9), gzip6: gz(wasm, 6) },
  glue: { raw: glue.reduce((n, b) => n + b.length, 0) },
  total: { raw: all.length, gzip9: gz(all, 9) },
  built: fs.statSync(wasmPath).mtime.toISOString(),
};
writeResult('size', out);
log(`wasm ${out.wasm.raw} bytes, ${out.wasm.gzip9} gzipped (-9)`);

// Runs bench/native's examples/wasm_cpu.rs (built for wasm32-wasip1) in this Node's V8,
// the engine workerd runs the worker's wasm in, and writes its timings as JSON.
//   node bench/wasm-cpu.mjs <file.wasm> <out.json> [quick]
import fs from 'node:fs';
import { WASI } from 'node:wasi';

const [file, out, quick] = process.argv.slice(2);
if (!file || !out) {
  console.error('usage: node bench/wasm-cpu.mjs <file.wasm> <out.json> [quick]');
  process.exit(2);
}
const lines = [];
const tmp = `${out}.stdout`;
const fd = fs.openSync(tmp, 'w');
const wasi = new WASI({ version: 'preview1', args: ['wasm_cpu', ...(quick ? ['quick'] : [])], env: {}, stdout: fd, returnOnExit: true });
const module = await WebAssembly.compile(fs.readFileSync(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
const code = wasi.start(instance);
fs.closeSync(fd);
for (const line of fs.readFileSync(tmp, 'utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line));
fs.rmSync(tmp, { force: true });
if (code !== 0) {
  console.error(`wasm_cpu exited with ${code}`);
  process.exit(1);
}
// The pure path of a push (parse + plan + upsert parameter), against the Workers Free
// plan's 10 ms of CPU per request: new records, and edits of stored ones.
const BUDGET_MS = 10;
const by = Object.fromEntries(lines.map((r) => [r.id, r]));
const totals = [];
for (const n of [100, 1000]) {
  for (const plan of ['plan_new', 'plan_edits']) {
    const parts = ['parse_validate', plan, 'storage_rows'].map((s) => by[`push_${n}/${s}`]);
    if (!parts.every(Boolean)) continue;
    const ms = parts.reduce((t, r) => t + r.median_ns, 0) / 1e6;
    totals.push({ changes: n, records: plan === 'plan_new' ? 'new' : 'edits', parts: parts.map((r) => r.id), ms, budget_ms: BUDGET_MS, within: ms <= BUDGET_MS });
  }
}
const result = { engine: `V8 ${process.versions.v8} (Node ${process.version})`, results: lines, push_totals: totals };
fs.writeFileSync(out, JSON.stringify(result, null, 2));
for (const r of lines) console.log(`${r.id.padEnd(28)} ${(r.median_ns / 1e3).toFixed(1).padStart(10)} µs`);
for (const t of totals) {
  console.log(
    `push of ${String(t.changes).padStart(4)} ${t.records.padEnd(5)} pure path (parse + plan + parameter): ${t.ms.toFixed(2).padStart(6)} ms = ` +
      `${((t.ms / BUDGET_MS) * 100).toFixed(0)}% of the Free plan's ${BUDGET_MS} ms: ${t.within ? 'within' : 'OVER'}`,
  );
}

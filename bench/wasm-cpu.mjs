// Runs bench/native's examples/wasm_cpu.rs (built for wasm32-wasip1) in this Node's V8,
// the engine workerd runs the worker's wasm in, and writes its timings as JSON.
//   node bench/wasm-cpu.mjs <file.wasm> <out.json> [quick] [only=<id prefix> ...]
import fs from 'node:fs';
import { WASI } from 'node:wasi';

const [file, out, ...rest] = process.argv.slice(2);
if (!file || !out) {
  console.error('usage: node bench/wasm-cpu.mjs <file.wasm> <out.json> [quick] [only=<id prefix> ...]');
  process.exit(2);
}
const lines = [];
const tmp = `${out}.stdout`;
const fd = fs.openSync(tmp, 'w');
const wasi = new WASI({ version: 'preview1', args: ['wasm_cpu', ...rest], env: {}, stdout: fd, returnOnExit: true });
const module = await WebAssembly.compile(fs.readFileSync(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
const code = wasi.start(instance);
fs.closeSync(fd);
const cases = [];
const codecs = [];
for (const line of fs.readFileSync(tmp, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const r = JSON.parse(line);
  (r.case ? cases : r.codec ? codecs : lines).push(r);
}
fs.rmSync(tmp, { force: true });
if (code !== 0) {
  console.error(`wasm_cpu exited with ${code}`);
  process.exit(1);
}
// The whole pure path of each request (`<case>/total`: fixtures::push_request or
// pull_request, from the request body and the page bodies D1 returns to the pages written
// back and the reply), against the Workers Free plan's 10 ms of CPU per request; and its
// steps, timed one by one (their sum is close to the total).
const BUDGET_MS = 10;
const STEPS = ['parse_validate', 'parse_head', 'current_plan', 'apply_spill', 'serialize', 'pull_reply'];
const by = Object.fromEntries(lines.map((r) => [r.id, r]));
const totals = cases.map((c) => {
  const total = by[`${c.case}/total`];
  const steps = Object.fromEntries(STEPS.filter((s) => by[`${c.case}/${s}`]).map((s) => [s, by[`${c.case}/${s}`].median_ns / 1e6]));
  const ms = total ? total.median_ns / 1e6 : null;
  return { ...c, ms, steps, budget_ms: BUDGET_MS, within: ms != null && ms <= BUDGET_MS };
});
// The page codec alone (crates/codec): deflate, inflate and the hex decoding of
// D1's `hex(body)`, per page.
const ms = (id) => (by[id] ? by[id].median_ns / 1e6 : null);
const codec = codecs.map((c) => ({
  ...c,
  encode_ms: ms(`codec/encode_${c.codec}`),
  decode_ms: ms(`codec/decode_${c.codec}`),
  encode1_ms: ms(`codec/encode1_${c.codec}`),
  decode1_ms: ms(`codec/decode1_${c.codec}`),
  from_hex_ms: ms(`codec/from_hex_${c.codec}`),
}));
const result = { engine: `V8 ${process.versions.v8} (Node ${process.version})`, results: lines, requests: totals, codec };
fs.writeFileSync(out, JSON.stringify(result, null, 2));
for (const r of lines.filter((r) => r.id.startsWith('jwt/'))) console.log(`${r.id.padEnd(28)} ${(r.median_ns / 1e3).toFixed(1).padStart(10)} µs`);
for (const t of totals) {
  const what = t.kind === 'pull' ? `pull of ${t.rows} from a head of ${t.head_records}` : t.kind === 'upload' ? `full upload of ${t.changes} over ${t.user_records} records (head ${t.head_records}, ${t.buckets} buckets)` : `push of ${t.changes} ${t.deletes ? 'deletes' : t.edits ? 'edits' : 'new'} into ${t.user_records} records (head ${t.head_records}, ${t.buckets} buckets)${t.spilled ? `, spills (${t.buckets_written} buckets written)` : ''}`;
  console.log(
    `${what.padEnd(86)} ${t.ms == null ? '   —  ' : t.ms.toFixed(2).padStart(6)} ms = ${t.ms == null ? '—' : ((t.ms / BUDGET_MS) * 100).toFixed(0)}% of ${BUDGET_MS} ms: ${t.within ? 'within' : 'OVER'}`,
  );
}
for (const c of codec) {
  console.log(
    `codec ${c.codec}: ${c.entries} entries, ${c.json_bytes} B JSON -> ${c.deflated_bytes} B as columns (format 1: ${c.format1_bytes} B): encode ${c.encode_ms?.toFixed(3)} ms (format 1 ${c.encode1_ms?.toFixed(3)}), decode ${c.decode_ms?.toFixed(3)} ms (format 1 ${c.decode1_ms?.toFixed(3)}), hex ${c.from_hex_ms?.toFixed(3)} ms`,
  );
}

// Where the worker's wasm bytes are: the code section by crate and by function, and the
// data section, raw and gzipped, so that size work starts from a measurement (issue #11's
// 200 KB goal) and each change can be checked by its exact difference.
//
//   node bench/wasm-size.mjs [--wasm build/index_bg.wasm] [--top 30] [--json out.json]
//
// Function names come from the module's `name` section or, when the build took it out
// (scripts/wasm-names.mjs), from wasm-names.json beside the module. A crate's "gzip alone"
// is its bodies gzipped together; "gzip saved" is what the whole code section loses in
// gzip when that crate's bodies are left out: the better guide to what removing it would
// save, since the code it shares patterns with stays.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Cursor, functionNames, sections as moduleSections } from '../scripts/lib/wasm.mjs';
import { flags, ROOT } from './lib/common.mjs';

const opt = flags(
  { wasm: path.join(ROOT, 'build', 'index_bg.wasm'), top: 30, json: '' },
  { wasm: 'the module', top: 'largest functions listed', json: 'also write the tables as JSON to this file' },
);
const wasmPath = opt.wasm;
const b = fs.readFileSync(wasmPath);

let importedFns = 0;
const bodies = []; // [start, end) of each defined function's body
const data = [];
const sections = [];
let names = {};
for (const s of moduleSections(b, wasmPath)) {
  const c = new Cursor(b, s.start);
  let label = `#${s.id}`;
  if (s.id === 0) {
    label = s.name;
    if (s.name === 'name') names = functionNames(b, s);
  } else if (s.id === 2) {
    label = 'import';
    for (let n = c.leb(); n > 0; n--) {
      c.str();
      c.str();
      const kind = b[c.at++];
      if (kind === 0) {
        c.leb();
        importedFns++;
      } else if (kind === 1) {
        c.at++;
        const flags = c.leb();
        c.leb();
        if (flags & 1) c.leb();
      } else if (kind === 2) {
        const flags = c.leb();
        c.leb();
        if (flags & 1) c.leb();
      } else if (kind === 3) {
        c.at += 2;
      } else if (kind === 4) {
        c.at++;
        c.leb();
      }
    }
  } else if (s.id === 10) {
    label = 'code';
    for (let n = c.leb(); n > 0; n--) {
      const len = c.leb();
      bodies.push([c.at, c.at + len]);
      c.at += len;
    }
  } else if (s.id === 11) {
    label = 'data';
    for (let n = c.leb(); n > 0; n--) {
      const flags = c.leb();
      if (flags === 0) {
        while (b[c.at++] !== 0x0b);
      } else if (flags === 2) {
        c.leb();
        while (b[c.at++] !== 0x0b);
      }
      const len = c.leb();
      data.push([c.at, c.at + len]);
      c.at += len;
    }
  }
  sections.push({ label, size: s.end - s.start, range: [s.start, s.end] });
}
if (Object.keys(names).length === 0) {
  const side = path.join(path.dirname(wasmPath), 'wasm-names.json');
  if (fs.existsSync(side)) names = JSON.parse(fs.readFileSync(side, 'utf8'));
}

const gz = (bufs) => zlib.gzipSync(Buffer.concat(bufs), { level: 9 }).length;
const slice = ([s, e]) => b.subarray(s, e);

/** The crate a demangled name's code belongs to: its first path segment, taken after any
 *  leading `<` / `&` / `*` / `mut ` / `dyn ` / `[` / `(` (so `<edgesync::X as serde::Serialize>::serialize`,
 *  code generated for edgesync's type, counts as edgesync's). */
function crateOf(name) {
  if (!name) return '(unnamed)';
  const lead = /^(<|&|\*|mut |dyn |const |\[|\()/;
  let s = name;
  while (lead.test(s)) s = s.replace(lead, '');
  // Methods of primitive types (`<f64 as core::fmt::Display>::fmt`, `<str>::find`) are
  // core's; wasm-bindgen's import shims are named after the JS function they call.
  if (/^(str|char|bool|[iuf](8|16|32|64|128|size))\b/.test(s)) return 'core';
  if (/^__wbg|^__wbindgen/.test(name)) return 'wasm_bindgen';
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:\[[0-9a-f]+\])?(::|$)/.exec(s);
  if (!m) return '(other)';
  return m[2] === '' ? `(${m[1]})` : m[1];
}

const fns = bodies.map((r, k) => {
  const name = names[importedFns + k] ?? `wasm-function[${importedFns + k}]`;
  return { name: name.replace(/\[[0-9a-f]{16}\]/g, ''), crate: crateOf(names[importedFns + k]), raw: r[1] - r[0], range: r };
});
const codeAll = fns.map((f) => slice(f.range));
const codeGz = gz(codeAll);
const byCrate = new Map();
for (const f of fns) {
  const c = byCrate.get(f.crate) ?? { crate: f.crate, fns: 0, raw: 0, parts: [] };
  c.fns++;
  c.raw += f.raw;
  c.parts.push(f);
  byCrate.set(f.crate, c);
}
const crates = [...byCrate.values()].sort((x, y) => y.raw - x.raw);
for (const c of crates) {
  c.gzipAlone = gz(c.parts.map((f) => slice(f.range)));
  c.gzipSaved = c.raw > 2000 ? codeGz - gz(fns.filter((f) => f.crate !== c.crate).map((f) => slice(f.range))) : null;
}
const dataGz = gz(data.map(slice));
const dataRaw = data.reduce((n, [s, e]) => n + e - s, 0);
const codeRaw = codeAll.reduce((n, x) => n + x.length, 0);
const wasmGz = gz([b]);

const fmt = (n) => n.toLocaleString('en-US');
console.log(`${wasmPath}: ${fmt(b.length)} B raw, ${fmt(wasmGz)} B gzip -9\n`);
console.log('| section | raw | gzip -9 alone |\n|---|---:|---:|');
console.log(`| code (${fmt(fns.length)} functions) | ${fmt(codeRaw)} | ${fmt(codeGz)} |`);
console.log(`| data (${data.length} segments) | ${fmt(dataRaw)} | ${fmt(dataGz)} |`);
for (const s of sections.filter((s) => !['code', 'data'].includes(s.label) && s.size > 1000)) {
  console.log(`| ${s.label} | ${fmt(s.size)} | ${fmt(gz([slice(s.range)]))} |`);
}
console.log('\n| crate | functions | raw | gzip alone | gzip saved without it |\n|---|---:|---:|---:|---:|');
for (const c of crates.filter((c) => c.raw > 1000)) {
  console.log(`| ${c.crate} | ${c.fns} | ${fmt(c.raw)} | ${fmt(c.gzipAlone)} | ${c.gzipSaved == null ? '—' : fmt(c.gzipSaved)} |`);
}
console.log(`\n| largest functions (of ${fmt(fns.length)}) | raw |\n|---|---:|`);
for (const f of [...fns].sort((x, y) => y.raw - x.raw).slice(0, opt.top)) {
  console.log(`| \`${f.name.length > 110 ? `${f.name.slice(0, 107)}...` : f.name}\` | ${fmt(f.raw)} |`);
}
if (opt.json) {
  fs.writeFileSync(
    opt.json,
    JSON.stringify(
      {
        wasm: { raw: b.length, gzip9: wasmGz },
        code: { raw: codeRaw, gzip9: codeGz },
        data: { raw: dataRaw, gzip9: dataGz },
        crates: crates.map(({ parts, ...c }) => c),
        functions: fns.map(({ range, ...f }) => f),
      },
      null,
      1,
    ),
  );
}

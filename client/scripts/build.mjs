// Builds the SDK: one minified ESM file (dist/edgesync.js) with esbuild, the .d.ts files
// with tsc, a copy of the bundle in the demo's static assets (demo/sdk/edgesync.js, served
// at /sdk/edgesync.js), and prints the bundle's size min+gzip; fails above the 10 KB budget.
//   node client/scripts/build.mjs [--no-dts]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';

const CLIENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = path.resolve(CLIENT, '..');
const BUDGET = 10 * 1024;

const out = path.join(CLIENT, 'dist', 'edgesync.js');
await esbuild.build({
  entryPoints: [path.join(CLIENT, 'src', 'index.ts')],
  outfile: out,
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2020',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
if (!process.argv.includes('--no-dts')) {
  fs.rmSync(path.join(CLIENT, 'dist', 'types'), { recursive: true, force: true });
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', CLIENT], { stdio: 'inherit' });
}
const assets = path.join(ROOT, 'demo', 'sdk');
fs.mkdirSync(assets, { recursive: true });
fs.copyFileSync(out, path.join(assets, 'edgesync.js'));

const min = fs.readFileSync(out);
const gz = zlib.gzipSync(min, { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(2)} KB`;
console.log(`[client] dist/edgesync.js: ${kb(min.length)} minified, ${kb(gz)} min+gzip (budget ${kb(BUDGET)})`);
if (gz > BUDGET) {
  console.error(`[client] the bundle is over its budget by ${gz - BUDGET} bytes`);
  process.exit(1);
}

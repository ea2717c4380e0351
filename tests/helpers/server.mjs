// Starts the built worker under `wrangler dev` (workerd + local D1/KV) on a free loopback
// port with a fresh persistence directory whose D1 database has schema.sql applied.
//
//   const srv = await startWorker({ vars: { RATE_LIMIT_BURST: '5' } });
//   ... fetch(srv.url + '/api/health') ...
//   await srv.stop();
//
// The worker must already be built (build/worker/shim.mjs): scripts/test.sh builds once,
// and EDGESYNC_SKIP_BUILD=1 keeps wrangler's [build] step from rebuilding per server.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRANGLER = path.join(ROOT, 'node_modules', '.bin', 'wrangler');
const TMP = path.join(ROOT, '.tmp');

export const TEST_JWT_SECRET = 'edgesync-integration-test-secret-0123456789abcdef';
export const TEST_ADMIN_TOKEN = 'edgesync-integration-test-admin-token';

// Vars every test server gets unless the test overrides them: fixed secrets, and limits
// high enough that rate limiting and quota degradation never interfere with tests that
// are not about them (a test about them passes its own values).
export const DEFAULT_VARS = Object.freeze({
  JWT_SECRET: TEST_JWT_SECRET,
  ADMIN_TOKEN: TEST_ADMIN_TOKEN,
  RATE_LIMIT_BURST: '100000',
  RATE_LIMIT_PER_MINUTE: '100000',
  QUOTA_REQUESTS: '100000000',
  QUOTA_D1_ROWS_READ: '1000000000',
  QUOTA_D1_ROWS_WRITTEN: '1000000000',
  QUOTA_KV_READS: '100000000',
  QUOTA_KV_WRITES: '100000000',
  // Tests are a development environment: DEV_CLOCK_OFFSET_MS (simulated days) is honoured
  // only under DEV_MODE=1.
  DEV_MODE: '1',
});

export const baseEnv = () => ({
  ...process.env,
  WRANGLER_SEND_METRICS: 'false',
  EDGESYNC_SKIP_BUILD: '1',
  CI: '1', // no interactive prompts, no hotkeys
  FORCE_COLOR: '0',
  NO_COLOR: '1',
});

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code ?? signal}):\n${out.slice(-4000)}`));
    });
  });
}

/**
 * Applies schema.sql to a local D1 under `dir` with
 * `wrangler d1 execute DB --local --persist-to DIR --file schema.sql`.
 * That costs ~2.5 s, so it is done once per schema.sql content into a template directory
 * under .tmp/ (shared by every test file) and the template is copied per server.
 */
export async function applySchema(dir) {
  const schema = fs.readFileSync(path.join(ROOT, 'schema.sql'));
  const wranglerToml = fs.readFileSync(path.join(ROOT, 'wrangler.toml'));
  const hash = createHash('sha256').update(schema).update(wranglerToml).digest('hex').slice(0, 16);
  const template = path.join(TMP, `d1-template-${hash}`);
  if (!fs.existsSync(path.join(template, '.complete'))) {
    const staging = fs.mkdtempSync(path.join(TMP, 'd1-staging-'));
    try {
      await run(WRANGLER, ['d1', 'execute', 'DB', '--local', '--persist-to', staging, '--file', 'schema.sql', '--yes'],
        { cwd: ROOT, env: baseEnv() });
      fs.writeFileSync(path.join(staging, '.complete'), hash);
      try {
        fs.renameSync(staging, template);
      } catch (e) {
        // another test process won the race: use its template
        if (!fs.existsSync(path.join(template, '.complete'))) throw e;
        fs.rmSync(staging, { recursive: true, force: true });
      }
    } catch (e) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw e;
    }
  }
  fs.cpSync(template, dir, { recursive: true, filter: (src) => path.basename(src) !== '.complete' });
}

const live = new Set();
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}
let hooksInstalled = false;
function installExitHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const s of live) s.kill();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      for (const s of live) s.kill();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/**
 * @param {{vars?: Record<string,string>, timeoutMs?: number, extraArgs?: string[],
 *          persistDir?: string, keepDir?: boolean}} [opts]
 *   persistDir: run on this existing persistence directory (its D1 and KV state) instead
 *     of a fresh one with the schema applied;
 *   keepDir: stop() leaves the directory in place (default: true when persistDir is
 *     given, since the caller owns it; false for a fresh directory).
 * @returns {Promise<{url: string, port: number, persistDir: string, vars: Record<string,string>,
 *   stop: (opts?: {keepDir?: boolean}) => Promise<void>,
 *   restart: (vars?: Record<string,string>, opts?: {extraArgs?: string[]}) => Promise<object>,
 *   logs: () => string, startupMs: number}>}
 *
 * `restart(vars)` stops the server, keeping its directory, and starts a new one on the same
 * persisted D1/KV state with the original vars overridden by `vars` (e.g. a clock offset);
 * it resolves to the new server, which takes over the directory (its stop() deletes it
 * unless this server was started with keepDir). In-memory state (rate-limit buckets,
 * unflushed usage counts) does not survive a restart; D1 and KV do.
 */
export async function startWorker({
  vars = {},
  timeoutMs = 60_000,
  extraArgs = [],
  persistDir: givenDir,
  keepDir = givenDir !== undefined,
} = {}) {
  const t0 = Date.now();
  if (!fs.existsSync(path.join(ROOT, 'build', 'worker', 'shim.mjs'))) {
    throw new Error('build/worker/shim.mjs is missing: run `bash scripts/build.sh` first (scripts/test.sh does)');
  }
  fs.mkdirSync(TMP, { recursive: true });
  let persistDir;
  if (givenDir !== undefined) {
    if (!fs.existsSync(givenDir)) throw new Error(`persistDir ${givenDir} does not exist`);
    persistDir = givenDir;
  } else {
    persistDir = fs.mkdtempSync(path.join(TMP, 'it-'));
    try {
      await applySchema(persistDir);
    } catch (e) {
      fs.rmSync(persistDir, { recursive: true, force: true });
      throw e;
    }
  }
  const port = await freePort();
  const inspectorPort = await freePort();
  const allVars = { ...DEFAULT_VARS, ...vars };
  const args = [
    'dev',
    '--port', String(port),
    '--ip', '127.0.0.1',
    '--inspector-port', String(inspectorPort),
    '--inspector-ip', '127.0.0.1',
    '--persist-to', persistDir,
    '--show-interactive-dev-session=false',
    '--live-reload=false',
    '--log-level', process.env.EDGESYNC_TEST_LOG_LEVEL || 'log',
    ...extraArgs,
  ];
  for (const [k, v] of Object.entries(allVars)) args.push('--var', `${k}:${v}`);

  const child = spawn(WRANGLER, args, {
    cwd: ROOT,
    env: { ...baseEnv(), WRANGLER_LOG_PATH: path.join(persistDir, 'wrangler-logs') },
    detached: true, // own process group: stop() kills wrangler and both workerd processes
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const append = (d) => {
    output += d;
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  let exited = null;
  const exitPromise = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );

  const entry = { kill: () => killGroup(child, 'SIGKILL') };
  live.add(entry);
  installExitHooks();

  let stopped = false;
  const stop = async ({ keepDir: keep = keepDir } = {}) => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
      await exitPromise;
      clearTimeout(timer);
    }
    // the wrangler parent can exit before its workerd children: make sure none survive
    killGroup(child, 'SIGKILL');
    live.delete(entry);
    if (!keep) fs.rmSync(persistDir, { recursive: true, force: true });
  };
  const restart = async (moreVars = {}, { extraArgs: args2 = extraArgs } = {}) => {
    await stop({ keepDir: true });
    return startWorker({ vars: { ...vars, ...moreVars }, timeoutMs, extraArgs: args2, persistDir, keepDir });
  };

  const url = `http://127.0.0.1:${port}`;
  const tail = () => output.split('\n').slice(-60).join('\n');
  const deadline = t0 + timeoutMs;
  let lastErr = 'no answer';
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`wrangler dev exited (${exited.code ?? exited.signal}) before the worker was ready:\n${tail()}`);
    }
    if (Date.now() > deadline) {
      const t = tail();
      await stop();
      throw new Error(`worker not healthy after ${timeoutMs} ms (last: ${lastErr}); wrangler output:\n${t}`);
    }
    try {
      const res = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      lastErr = `GET /api/health -> ${res.status}`;
    } catch (e) {
      lastErr = String(e.cause?.code || e.message || e);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return { url, port, persistDir, vars: allVars, stop, restart, logs: () => output, startupMs: Date.now() - t0 };
}

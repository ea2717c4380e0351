// A worker that can be killed hard and started again on the same persisted local state
// (D1 + KV under one --persist-to directory), for crash-safety tests. Same startup as
// server.mjs (wrangler dev, schema template, health wait), but the directory survives
// kill() and restart() reuses it; stop() removes it.
//
//   const w = await startRestartableWorker();
//   ...            w.kill()       SIGKILL to wrangler's whole process group (workerd too)
//   await w.restart();            same persist dir, new port: w.url changes
//   await w.stop();
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DATABASES, DEFAULT_VARS, ROOT, applySchema, baseEnv, freePort, shardVars, testConfig } from './server.mjs';

const WRANGLER = path.join(ROOT, 'node_modules', '.bin', 'wrangler');
const TMP = path.join(ROOT, '.tmp');

/** True while any process of group `pgid` is alive. */
function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

const live = new Set();
let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const pgid of live) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

/**
 * @param {{vars?: Record<string,string>, timeoutMs?: number}} [opts]
 */
export async function startRestartableWorker({ vars = {}, timeoutMs = 60_000 } = {}) {
  if (!fs.existsSync(path.join(ROOT, 'build', 'worker', 'shim.mjs'))) {
    throw new Error('build/worker/shim.mjs is missing: run `bash scripts/build.sh` first (scripts/test.sh does)');
  }
  fs.mkdirSync(TMP, { recursive: true });
  const persistDir = fs.mkdtempSync(path.join(TMP, 'it-'));
  await applySchema(persistDir).catch((e) => {
    fs.rmSync(persistDir, { recursive: true, force: true });
    throw e;
  });
  hookExit();
  const allVars = { ...DEFAULT_VARS, ...shardVars(DATABASES), ...vars };
  let child = null;
  let exited = null;
  let output = '';
  const self = { persistDir, url: null, port: null, starts: 0, logs: () => output };

  async function launch(portRetries = 3) {
    const t0 = Date.now();
    const port = await freePort();
    const inspectorPort = await freePort();
    const args = ['dev', '--config', testConfig(), '--port', String(port), '--ip', '127.0.0.1', '--inspector-port', String(inspectorPort), '--inspector-ip', '127.0.0.1',
      '--persist-to', persistDir, '--show-interactive-dev-session=false', '--live-reload=false', '--log-level', process.env.EDGESYNC_TEST_LOG_LEVEL || 'log'];
    for (const [k, v] of Object.entries(allVars)) args.push('--var', `${k}:${v}`);
    output += `\n===== start ${self.starts + 1} on port ${port} =====\n`;
    let mine = ''; // this start's output (`output` is trimmed when long)
    const c = spawn(WRANGLER, args, {
      cwd: ROOT,
      env: { ...baseEnv(), WRANGLER_LOG_PATH: path.join(persistDir, 'wrangler-logs') },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const append = (d) => {
      mine += d;
      output += d;
      if (output.length > 400_000) output = output.slice(-200_000);
    };
    c.stdout.on('data', append);
    c.stderr.on('data', append);
    exited = null;
    c.exitPromise = new Promise((resolve) =>
      c.on('exit', (code, signal) => {
        exited = { code, signal };
        resolve();
      }),
    );
    child = c;
    live.add(c.pid);
    self.port = port;
    self.url = `http://127.0.0.1:${port}`;
    self.starts++;
    let lastErr = 'no answer';
    for (;;) {
      // As in server.mjs: the ports were free when picked, but another process can bind one
      // before workerd does (whether or not wrangler then exits). Nothing was served on
      // them yet: pick new ones.
      if (/Address already in use/.test(mine) && portRetries > 0) {
        await self.kill();
        self.starts--;
        return launch(portRetries - 1);
      }
      if (exited) throw new Error(`wrangler dev exited (${exited.code ?? exited.signal}) before the worker was ready:\n${output.slice(-4000)}`);
      if (Date.now() - t0 > timeoutMs) {
        await self.kill();
        throw new Error(`worker not healthy after ${timeoutMs} ms (last: ${lastErr}):\n${output.slice(-4000)}`);
      }
      try {
        const res = await fetch(`${self.url}/api/health`, { signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        if (res.status === 200) break;
        lastErr = `GET /api/health -> ${res.status}`;
      } catch (e) {
        lastErr = String(e.cause?.code || e.message || e);
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    self.startupMs = Date.now() - t0;
  }

  /** SIGKILL (or `signal`) to the whole process group; resolves when none of it is left. */
  self.kill = async (signal = 'SIGKILL') => {
    if (!child) return;
    const c = child;
    child = null;
    try {
      process.kill(-c.pid, signal);
    } catch {
      /* already gone */
    }
    await Promise.race([c.exitPromise, new Promise((r) => setTimeout(r, 10_000))]);
    for (let i = 0; i < 100 && groupAlive(c.pid); i++) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (groupAlive(c.pid)) throw new Error(`process group ${c.pid} survived SIGKILL`);
    live.delete(c.pid);
  };

  /** Starts again on the same persisted state (after kill()). */
  self.restart = async () => {
    if (child) await self.kill();
    await launch();
  };

  self.stop = async () => {
    await self.kill();
    fs.rmSync(persistDir, { recursive: true, force: true });
  };

  try {
    await launch();
  } catch (e) {
    await self.kill().catch(() => {});
    fs.rmSync(persistDir, { recursive: true, force: true });
    throw e;
  }
  return self;
}

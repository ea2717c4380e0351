// Headless Chromium for the browser tests: Debian's `chromium` package driven by
// playwright-core (never a browser that playwright downloads), with a fresh profile per
// launch, plus a tiny static page server to give pages their own loopback origin.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.EDGESYNC_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launches Chromium with a fresh `--user-data-dir` (removed by close()).
 * @returns {Promise<{context: import('playwright-core').BrowserContext, newPage: () => Promise<import('playwright-core').Page>, close: () => Promise<void>}>}
 */
export async function launchBrowser({ timeoutMs = 60_000 } = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium package (apt-get install -y chromium)`);
  }
  let context;
  let userDataDir;
  // Chromium occasionally dies while starting on this machine (SIGSEGV before the first
  // page, "Target page, context or browser has been closed"): a launch is tried 3 times.
  for (let attempt = 1; ; attempt++) {
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgesync-chromium-'));
    try {
      // launchPersistentContext passes --user-data-dir=<userDataDir> itself.
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: timeoutMs,
      });
      break;
    } catch (e) {
      fs.rmSync(userDataDir, { recursive: true, force: true });
      if (attempt >= 3 || !/has been closed|SIGSEGV|exitCode=/.test(String(e?.message))) throw e;
      console.error(`[browser] Chromium died while starting (attempt ${attempt}); launching again`);
    }
  }
  return {
    context,
    newPage: () => context.newPage(),
    close: async () => {
      await context.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Serves one HTML page (any path) on 127.0.0.1:<free port>, so that a page gets its own
 * origin, different from the worker's. Also answers /favicon.ico with 204.
 * @returns {Promise<{origin: string, port: number, close: () => Promise<void>}>}
 */
export async function servePage(html = '<!doctype html><meta charset="utf-8"><title>edgesync test page</title><p>test page</p>') {
  const server = http.createServer((req, res) => {
    if (req.url === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

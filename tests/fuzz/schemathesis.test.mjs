// Fuzzing with schemathesis against GET /api/openapi.json and the running worker, with a
// valid user JWT (and, for the admin route, the admin token). The bar: no 5xx response
// and no worker crash ("panicked" / "RuntimeError: unreachable" in its log). The
// document-conformance checks schemathesis runs (status codes, content types, response
// schemas, headers, negative / positive data, undeclared methods, ignored auth) are
// reported and asserted in their own test.
//
// Budget: EDGESYNC_FUZZ=quick (default, part of `npm test`: a few examples per
// operation, under a minute) or long (`npm run fuzz`: fuzzing repeats for 8 minutes).
// EDGESYNC_FUZZ_EXAMPLES, EDGESYNC_FUZZ_MAX_TIME (seconds) override. Reports (HAR, JUnit)
// go to .tmp/fuzz-<time>/.
//
// Seeds: every run draws a fresh random seed (so each `npm test` explores new inputs)
// and prints it; EDGESYNC_FUZZ_SEED=<n> replays a run exactly (same generated cases):
//   EDGESYNC_FUZZ_SEED=123456 node --test tests/fuzz/schemathesis.test.mjs
// Both the no-5xx test and the document-conformance test are strict in both profiles.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, TEST_ADMIN_TOKEN, startWorker } from '../helpers/server.mjs';
import { newUserId, token } from '../helpers/client.mjs';
import { routesFromSource } from '../helpers/source.mjs';

// quick: a few examples per operation (the coverage phase adds its own boundary cases);
// long: fuzzing repeats until --max-time is spent.
const PROFILES = {
  quick: { examples: 8, maxTime: null, hardLimitMs: 240_000 },
  long: { examples: 100, maxTime: 480, hardLimitMs: 900_000 },
};
const profileName = process.env.EDGESYNC_FUZZ || 'quick';
const profile = PROFILES[profileName];
assert.ok(profile, `EDGESYNC_FUZZ must be one of ${Object.keys(PROFILES)}`);
const EXAMPLES = Number(process.env.EDGESYNC_FUZZ_EXAMPLES || profile.examples);
const MAX_TIME = process.env.EDGESYNC_FUZZ_MAX_TIME ? Number(process.env.EDGESYNC_FUZZ_MAX_TIME) : profile.maxTime;
const SEED = Number(process.env.EDGESYNC_FUZZ_SEED || Math.floor(Math.random() * 1e9));
assert.ok(Number.isSafeInteger(SEED) && SEED >= 0, `EDGESYNC_FUZZ_SEED must be a non-negative integer: ${process.env.EDGESYNC_FUZZ_SEED}`);
const REPLAY = `EDGESYNC_FUZZ_SEED=${SEED}${profileName === 'long' ? ' EDGESYNC_FUZZ=long' : ''} node --test tests/fuzz/schemathesis.test.mjs`;
console.log(`# schemathesis seed ${SEED} (replay: ${REPLAY})`);
const ST = path.join(ROOT, '.venv-fuzz', 'bin', 'schemathesis');
const CHECKS = 'all';

let srv;
const runs = [];
before(async () => {
  assert.ok(fs.existsSync(ST), `${ST} is missing: scripts/setup.sh installs schemathesis into .venv-fuzz/ (bash scripts/setup-test-tools.sh)`);
  srv = await startWorker();
});
after(async () => {
  await srv?.stop();
});

/** Runs schemathesis with `args`, killed after `limitMs`; resolves {code, out, ms, timedOut}. */
function schemathesis(args, limitMs) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(ST, args, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', PYTHONUNBUFFERED: '1', SCHEMATHESIS_HOOKS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, limitMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - t0, timedOut });
    });
  });
}

/** One schemathesis run; parses its HAR (every request and response) and its summary. */
async function fuzz(name, { header, include = [], exclude = [], examples, maxTime = null }) {
  const reportDir = path.join(ROOT, '.tmp', `fuzz-${Date.now()}-${name}`);
  fs.mkdirSync(reportDir, { recursive: true });
  const har = path.join(reportDir, 'requests.har.json');
  const junit = path.join(reportDir, 'junit.xml');
  const args = [
    '--config-file', path.join(ROOT, 'tests', 'fuzz', 'schemathesis.toml'),
    'run', `${srv.url}/api/openapi.json`,
    '--url', srv.url,
    '--header', header,
    '--checks', CHECKS,
    '--max-examples', String(examples),
    ...(maxTime ? ['--max-time', String(maxTime)] : []),
    '--seed', String(SEED),
    '--workers', '2',
    '--phases', 'examples,coverage,fuzzing',
    '--continue-on-failure',
    '--generation-database', 'none',
    '--request-timeout', '30',
    '--report', 'har,junit',
    '--report-har-path', har,
    '--report-junit-path', junit,
    '--output-sanitize', 'true',
    '--no-color',
    ...include.flatMap((p) => ['--include-path', p]),
    ...exclude.flatMap((p) => ['--exclude-path', p]),
  ];
  const r = await schemathesis(args, profile.hardLimitMs);
  fs.writeFileSync(path.join(reportDir, 'output.txt'), r.out);
  assert.ok(!r.timedOut, `schemathesis ${name} exceeded ${profile.hardLimitMs} ms:\n${r.out.slice(-3000)}`);
  assert.ok(fs.existsSync(har), `schemathesis ${name} wrote no HAR (exit ${r.code}):\n${r.out.slice(-5000)}`);
  const entries = JSON.parse(fs.readFileSync(har, 'utf8')).log.entries;
  const byStatus = {};
  const byOperation = {};
  const serverErrors = [];
  for (const e of entries) {
    const st = e.response.status;
    byStatus[st] = (byStatus[st] ?? 0) + 1;
    const op = operationOf(e.request.method, new URL(e.request.url).pathname);
    byOperation[op] = (byOperation[op] ?? 0) + 1;
    if (st >= 500) serverErrors.push(e);
  }
  // "Failures:" block of the summary: "❌ ST201 Schema-violating request accepted: 3"
  const failures = [...r.out.matchAll(/^\s*❌ (ST\d+ [^:\n]+): (\d+)$/gm)].map(([, what, n]) => ({ what, n: Number(n) }));
  const sections = [...r.out.matchAll(/^_{3,} (.+?) _{3,}$/gm)].map((m) => m[1]);
  const toolErrors = /^Errors:$/m.test(r.out) ? r.out.slice(r.out.search(/^Errors:$/m)).split('\n\n')[0] : '';
  const cases = /^\s*(\d+) generated/m.exec(r.out)?.[1];
  const failedCases = failingCases(r.out);
  const run = { name, code: r.code, ms: r.ms, requests: entries.length, cases: cases ? Number(cases) : null, byStatus, byOperation, failures, failedCases, sections, toolErrors, serverErrors, reportDir, out: r.out };
  runs.push(run);
  return run;
}

/**
 * The failing test cases of a run, from the FAILURES block of its output: per case the
 * operation, the case id, the checks that failed and the response text. A case is
 * `known` when every check it failed is a documented finding (KNOWN below).
 */
function failingCases(out) {
  const start = out.search(/^=+ FAILURES =+$/m);
  if (start < 0) return [];
  const end = out.search(/^=+ SUMMARY =+$/m);
  const block = out.slice(start, end < 0 ? undefined : end);
  const result = [];
  const ops = block.split(/^_{3,} (.+?) _{3,}$/m); // [pre, op1, body1, op2, body2, ...]
  for (let i = 1; i < ops.length; i += 2) {
    const op = ops[i];
    for (const c of ops[i + 1].split(/^\d+\. Test Case ID: /m).slice(1)) {
      const id = c.split('\n', 1)[0].trim();
      const checks = [...c.matchAll(/^- (ST\d+ [^\n]+)$/gm)].map((m) => m[1].trim());
      const response = /^\[(\d+)\][^\n]*\n\s*\n?\s*`([^`]*)`?/m.exec(c);
      const status = response ? Number(response[1]) : null;
      const text = response?.[2] ?? '';
      const known = checks.length > 0 && checks.every((check) => KNOWN.some((k) => k.check.test(check) && k.response.test(text)));
      result.push({ op, id, checks, status, text: text.slice(0, 300), known });
    }
  }
  return result;
}

// Findings reported to the worker's owners and not fixed yet: each matches a failed
// check and the response it got. They are reported by their own (todo) test; any other
// failure fails the conformance test.
// (The first entry, found with seed 130300394 — a schema-valid change of a record at
// version 2^53 − 1 refused with 400 — was fixed by answering version_exhausted
// conflicts, 409 for a full upload.)
// Each entry: { check: /^ST…/, response: /text of the response/, what: 'description' }.
const KNOWN = [];

const ROUTES = routesFromSource();
/** "POST /api/sync/{type}" for a request of a route of the table, else "other (undeclared method or path)". */
function operationOf(method, pathname) {
  const hit = ROUTES.find((r) => r.method === method && new RegExp(`^${r.path.replace('{type}', '(tasks|lists|notes|settings)').replace(/\./g, '\\.')}/?$`).test(pathname));
  return hit ? `${hit.method} ${hit.path}` : 'other (undeclared method, path or type)';
}

function summary(run) {
  const statuses = Object.entries(run.byStatus).sort().map(([s, n]) => `${s}×${n}`).join(' ');
  return `${run.name}: ${run.requests} requests (${run.cases ?? '?'} generated cases), ${(run.ms / 1000).toFixed(1)} s, exit ${run.code}; by status: ${statuses}`;
}

describe(`schemathesis (${profileName}: ${EXAMPLES} examples per operation${MAX_TIME ? `, ${MAX_TIME} s` : ''}, seed ${SEED})`, () => {
  test('no 5xx and no crash, with a user JWT on every user route and the admin token on the admin route', async (t) => {
    // The admin routes take the admin token, not a user's JWT. POST /api/admin/reshard is
    // left out of both runs: whether a step is accepted depends on the steps before it
    // (begin before copy…), which no schema can say; tests/integration/shards.test.mjs
    // drives it, its refusals included.
    const adminPaths = ['/api/admin/usage', '/api/admin/records', '/api/admin/reshard'];
    const user = await fuzz('user', { header: `Authorization: Bearer ${await token(newUserId('fuzz'), { ttl: 4 * 3600 })}`, exclude: adminPaths, examples: EXAMPLES, maxTime: MAX_TIME });
    const admin = await fuzz('admin', { header: `Authorization: Bearer ${TEST_ADMIN_TOKEN}`, include: ['/api/admin/usage', '/api/admin/records', '/api/health'], examples: Math.min(EXAMPLES, 10) });
    t.diagnostic(`seed ${SEED}; replay with: ${REPLAY}`);
    for (const run of [user, admin]) {
      t.diagnostic(summary(run));
      t.diagnostic(`  by operation: ${Object.entries(run.byOperation).sort().map(([o, n]) => `${o}×${n}`).join(', ')}`);
      if (run.failures.length) t.diagnostic(`  conformance failures: ${run.failures.map((f) => `${f.what} ×${f.n}`).join('; ')}`);
      if (run.toolErrors) t.diagnostic(`  schemathesis errors (tool side): ${run.toolErrors.replace(/\s+/g, ' ')}`);
      t.diagnostic(`  reports: ${path.relative(ROOT, run.reportDir)}`);
    }
    assert.ok(user.requests >= 100, `the user run made only ${user.requests} requests:\n${user.out.slice(-4000)}`);
    assert.ok(Object.keys(user.byOperation).length >= 9, `operations reached: ${Object.keys(user.byOperation)}`);
    assert.ok((admin.byStatus[200] ?? 0) >= 1, `the admin route answered the admin token: ${JSON.stringify(admin.byStatus)}`);

    const fivexx = [...user.serverErrors, ...admin.serverErrors].map((e) =>
      `${e.request.method} ${e.request.url}\n  request body: ${(e.request.postData?.text ?? '').slice(0, 1500)}\n  → ${e.response.status} ${(e.response.content?.text ?? '').slice(0, 500)}`);
    assert.deepEqual(fivexx, [], `the worker answered 5xx (seed ${SEED}; replay: ${REPLAY}):\n${fivexx.join('\n')}`);
    const log = srv.logs();
    const crash = /panicked|RuntimeError: unreachable/.exec(log);
    assert.equal(crash, null, `the worker crashed:\n${log.slice(Math.max(0, (crash?.index ?? 0) - 2000), (crash?.index ?? 0) + 2000)}`);
    // the worker is still healthy
    const health = await fetch(`${srv.url}/api/health`);
    assert.equal(health.status, 200);
  });

  test('the document-conformance checks pass (status codes, schemas, content types, methods, auth)', (t) => {
    assert.ok(runs.length >= 2, 'the fuzz runs happened');
    const failing = runs.flatMap((r) => r.sections.map((s) => `${r.name}: ${s}`));
    const kinds = runs.flatMap((r) => r.failures.map((f) => `${r.name}: ${f.what} ×${f.n}`));
    const cases = runs.flatMap((r) => r.failedCases.map((c) => ({ ...c, run: r.name })));
    // every failure the summary counts must be a parsed case (else the parser is wrong)
    const counted = runs.reduce((a, r) => a + r.failures.reduce((b, f) => b + f.n, 0), 0);
    assert.ok(cases.length >= Math.min(1, counted) && (counted === 0) === (cases.length === 0),
      `the FAILURES block parsed into ${cases.length} cases, the summary counts ${counted}: ${kinds.join('; ')}`);
    const unknown = cases.filter((c) => !c.known);
    const known = cases.filter((c) => c.known);
    if (known.length) t.diagnostic(`${known.length} failing case(s) are a known finding (see the todo test below)`);
    assert.deepEqual(unknown.map((c) => `${c.run}: ${c.op} [${c.id}] ${c.checks.join(', ')} → ${c.status} ${c.text}`), [],
      `schemathesis checks failed with seed ${SEED} (replay: ${REPLAY}; summary: ${kinds.join('; ')}; operations: ${failing.join(', ')}); details in ${runs.map((r) => path.relative(ROOT, r.reportDir)).join(', ')}/output.txt`);
  });

  for (const k of KNOWN) {
    test(`known finding: ${k.what}`, { todo: `worker/document mismatch: ${k.what}` }, () => {
      const hits = runs.flatMap((r) => r.failedCases.filter((c) => c.checks.some((ch) => k.check.test(ch)) && k.response.test(c.text))
        .map((c) => `${r.name}: ${c.op} [${c.id}] ${c.checks.join(', ')} → ${c.status} ${c.text}`));
      assert.deepEqual(hits, [], `seed ${SEED}:\n${hits.join('\n')}`);
    });
  }
});

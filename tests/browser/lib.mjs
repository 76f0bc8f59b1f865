// Shared helpers of the browser tests (run.mjs: the customer pages; app.mjs: the /app
// workspace): checks and reporting, the server and SMTP sink, axe audits and screenshots.
//
// Imported by run.mjs and app.mjs; not run by itself.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
export const BINARY = process.env.CLOSELOOP_BIN || path.join(ROOT, 'target', 'debug', 'closeloop');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const AXE_PATH = path.join(HERE, 'node_modules', 'axe-core', 'axe.min.js');
const AXE_SOURCE = fs.existsSync(AXE_PATH) ? fs.readFileSync(AXE_PATH, 'utf8') : '';
export const SHOTS = path.join(ROOT, 'target', 'screenshots');
export const BRAND_COLOR = '#0a7d4f';
export const PHONE = { width: 375, height: 740 };
export const DESKTOP = { width: 1280, height: 800 };
export const NARROW = 320;

// ---------------------------------------------------------------- checks and reporting

export let passed = 0;
export let failed = 0;
export const failures = [];

/** Runs one named check; a thrown error fails it (and is reported), the run goes on. */
export async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   - ${name}`);
    return true;
  } catch (e) {
    failed += 1;
    failures.push(name);
    console.log(`FAIL - ${name}\n       ${String(e?.stack || e).split('\n').slice(0, 6).join('\n       ')}`);
    return false;
  }
}

/** A step the rest of the run depends on: a failure stops the run. */
export async function must(name, fn) {
  if (!(await check(name, fn))) throw new Error(`stopping: "${name}" failed`);
}

// ---------------------------------------------------------------- processes and cleanup

export const cleanups = [];
export let cleaned = false;
export async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch {
      /* best effort */
    }
  }
}
export let server = null;
export function killServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try {
      server.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
// Whatever happens, the server does not outlive this process.
process.on('exit', killServer);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    console.log(`\n${sig}: stopping`);
    killServer();
    await cleanup();
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exit(130);
  });
}

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

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, timeoutMs = 20_000, everyMs = 50) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

// ---------------------------------------------------------------- SMTP sink

export const inbox = [];
export async function startSmtpSink() {
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((mail) => {
          inbox.push({ mail, to: session.envelope.rcptTo.map((r) => r.address) });
          callback();
        })
        .catch(callback);
    },
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    smtp.once('error', reject);
    smtp.listen(port, '127.0.0.1', resolve);
  });
  cleanups.push(() => new Promise((r) => smtp.close(r)));
  return port;
}

// ---------------------------------------------------------------- the server and its API

export let base = '';
/** The environment the server was started with (for CLI calls on the same database). */
export let serverEnv = {};
export let apiKey = '';

export async function api(method, url, body) {
  const res = await fetch(base + url, {
    method,
    headers: {
      Authorization: `Bearer ${apiKey}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: res.status, json, text };
}

export async function apiOk(method, url, body, expected = [200, 201]) {
  const r = await api(method, url, body);
  assert.ok(expected.includes(r.status), `${method} ${url} → ${r.status}: ${r.text.slice(0, 300)}`);
  return r.json;
}

export async function startServer(tmp, smtpPort, extraEnv = {}) {
  assert.ok(fs.existsSync(BINARY), `${BINARY} is missing: run \`cargo build\` first`);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    DATABASE_URL: process.env.CLOSELOOP_TEST_DATABASE_URL || `sqlite://${path.join(tmp, 'closeloop.db')}`,
    BIND_ADDR: `127.0.0.1:${port}`,
    PUBLIC_URL: base,
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    SMTP_FROM: 'Acme Surveys <surveys@acme.test>',
    OUTBOX_DIR: path.join(tmp, 'outbox'),
    DISPATCH_INTERVAL_MS: '50',
    HTTP_WORKERS: '2',
    PUBLIC_LINK_BURST: '500',
    // The tests' webhook receivers listen on 127.0.0.1, which the SSRF guard refuses.
    WEBHOOK_ALLOW_PRIVATE: 'true',
    RUST_LOG: process.env.RUST_LOG || 'info',
    LOG_FORMAT: 'text',
    ...extraEnv,
  };
  serverEnv = env;
  const cli = spawnSync(BINARY, ['api-key', 'create', '--name', 'browser-tests', '--role', 'admin'], {
    env,
    encoding: 'utf8',
  });
  assert.equal(cli.status, 0, `api-key create failed: ${cli.stderr}`);
  apiKey = cli.stdout.trim().split('\n').pop().trim();
  assert.ok(apiKey.length >= 20, `no key on the last line of: ${cli.stdout}`);

  const log = fs.openSync(path.join(tmp, 'server.log'), 'a');
  server = spawn(BINARY, ['serve'], { env, stdio: ['ignore', log, log] });
  cleanups.push(async () => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM');
      await Promise.race([new Promise((r) => server.once('exit', r)), sleep(5_000)]);
      killServer();
    }
  });
  await waitFor(
    '/readyz = 200',
    async () => {
      if (server.exitCode !== null) throw new Error(`server exited with ${server.exitCode}`);
      const r = await fetch(`${base}/readyz`);
      return r.status === 200;
    },
    30_000,
  );
}

// ---------------------------------------------------------------- page helpers

export const allViolations = [];

/** axe-core on the page as it is now; prints every violation, fails on serious/critical
 * (unless `reportOnly`). */
export async function audit(page, name, { reportOnly = false } = {}) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern (an
  // injected <script> would be refused by `script-src 'self'`).
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary?.split('\n').slice(1).join('; ')}`),
    }));
  });
  for (const v of result) {
    if (!reportOnly) allViolations.push({ page: name, ...v });
    console.log(`       axe [${name}] ${v.impact}: ${v.id} (${v.help})`);
    for (const n of v.nodes) console.log(`         - ${n}`);
  }
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (reportOnly) return;
  assert.equal(bad.length, 0, `serious/critical axe violations on ${name}: ${bad.map((v) => v.id).join(', ')}`);
}

/** Full-page screenshots at 375 and 1280 px, and no horizontal scroll at 320 px (or, with
 * `narrow: 'report'`, only a note when there is). */
export async function shoot(page, name, { narrow = 'enforce' } = {}) {
  const original = page.viewportSize();
  try {
    await page.setViewportSize(PHONE);
    await page.screenshot({ path: path.join(SHOTS, `${name}-375.png`), fullPage: true });
    await page.setViewportSize(DESKTOP);
    await page.screenshot({ path: path.join(SHOTS, `${name}-1280.png`), fullPage: true });
    await page.setViewportSize({ width: NARROW, height: PHONE.height });
    const widths = await page.evaluate(() => ({
      scroll: document.scrollingElement.scrollWidth,
      client: document.scrollingElement.clientWidth,
    }));
    if (narrow === 'enforce') {
      assert.ok(widths.scroll <= NARROW, `horizontal scroll at ${NARROW}px: scrollWidth ${widths.scroll}`);
    } else if (widths.scroll > NARROW) {
      console.log(`       note [${name}]: scrolls sideways at ${NARROW}px (scrollWidth ${widths.scroll})`);
    }
  } finally {
    await page.setViewportSize(original);
  }
}

/** The audit and the screenshots of one page, as two checks. */
export async function inspect(page, name) {
  await check(`${name}: no serious or critical axe violations`, () => audit(page, name));
  await check(`${name}: screenshots at 375/1280 px, no horizontal scroll at ${NARROW} px`, () => shoot(page, name));
}

/** Clicks (or taps) something that submits a form; returns the response to the POST. */
export async function submitBy(page, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.request().resourceType() === 'document'),
    action(),
  ]);
  await page.waitForLoadState('load');
  return response;
}

export const h1 = (page) => page.locator('h1').first().innerText();

/** WCAG contrast of two computed CSS colours (`rgb(r, g, b)`). */
export function contrastOf(a, b) {
  const lum = (css) => {
    const [r, g, bl] = css.match(/\d+(\.\d+)?/g).slice(0, 3).map((v) => Number(v) / 255);
    const lin = (c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(bl);
  };
  const [x, y] = [lum(a), lum(b)].sort((m, n) => n - m);
  return (x + 0.05) / (y + 0.05);
}

/** Prints the summary and exits: 1 when any check failed or the run crashed. */
export async function finish(crashed) {
  await cleanup();
  killServer();
  const serious = allViolations.filter((v) => v.impact === 'serious' || v.impact === 'critical').length;
  console.log(
    `\naxe: ${allViolations.length} violation(s) found, ${serious} serious or critical; screenshots in ${path.relative(process.cwd(), SHOTS) || '.'}`,
  );
  if (crashed) {
    console.log(`run stopped early: ${crashed.message}`);
    if (!failed) failed = 1;
  }
  if (failures.length) console.log(`failed: ${failures.join('; ')}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

/** A temporary folder for the run, kept (with the server log tail printed) when a check failed. */
export function runDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => {
    if (failed > 0) {
      let tail = '(no server log)';
      try {
        tail = fs.readFileSync(path.join(dir, 'server.log'), 'utf8').trimEnd().split('\n').slice(-30).join('\n');
      } catch {
        /* none */
      }
      console.log(`\nlast server log lines (${path.join(dir, 'server.log')} is kept):\n${tail}`);
    } else {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  return dir;
}

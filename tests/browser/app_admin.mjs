#!/usr/bin/env node
// Browser tests of the workspace's contacts and settings pages (/app/contacts, /app/settings).
//
// Starts a real `target/debug/closeloop` (SQLite, or the database in
// CLOSELOOP_TEST_DATABASE_URL) and an HTTP receiver of its own (node:http), signs in an admin
// made with `closeloop user create`, then, as a support lead would: finds a customer, opens
// their page (invitations, answers, tasks), re-subscribes them; creates an API key (shown
// once, then used against the API, its "last used" shown) and a webhook (secret shown once),
// sends a test event that the receiver gets signed, and redelivers it. Every page is audited
// with axe-core and screenshotted at 375 and 1280 px into target/screenshots/app-admin-*.png.
//
// Run from anywhere: `node tests/browser/app_admin.mjs` (after `cargo build` and `npm ci` here).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import { chromium } from 'playwright-core';

import {
  BINARY,
  apiOk,
  CHROMIUM,
  SHOTS,
  base,
  check,
  cleanups,
  finish,
  h1,
  inspect,
  must,
  runDir,
  serverEnv,
  startServer,
  startSmtpSink,
  submitBy,
  waitFor,
} from './lib.mjs';

/** An HTTP receiver on a random loopback port that records every request and answers 200. */
async function startReceiver() {
  const got = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), path: req.url });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => srv.close(r)));
  return { url: `http://127.0.0.1:${srv.address().port}/hook`, got };
}

/** Whether a received request carries a Standard Webhooks v1 signature made with `secret`. */
function signatureOk(r, secret) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signed = `${r.headers['webhook-id']}.${r.headers['webhook-timestamp']}.${r.body}`;
  const mac = crypto.createHmac('sha256', key).update(signed).digest('base64');
  return String(r.headers['webhook-signature'] || '').split(' ').includes(`v1,${mac}`);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = runDir('closeloop-app-admin-');
  const smtpPort = await startSmtpSink();
  await must('server starts and /readyz answers 200', () =>
    startServer(tmp, smtpPort, { WEBHOOK_RETRY_BASE_SECONDS: '0' }),
  );
  const receiver = await startReceiver();
  let link;
  await must('`closeloop user create` makes an admin', () => {
    const cli = spawnSync(
      BINARY,
      ['user', 'create', '--email', 'bea@acme.test', '--name', 'Bea Boss', '--role', 'admin'],
      { env: serverEnv, encoding: 'utf8' },
    );
    assert.equal(cli.status, 0, cli.stderr);
    link = cli.stdout.trim().split('\n').pop();
  });

  // Customers: Ada answered 3 (a task) and unsubscribed; Bob was invited.
  let ada;
  await must('customers exist: Ada (a detractor, unsubscribed) and Bob', async () => {
    const survey = await apiOk('POST', '/api/v1/surveys', { kind: 'nps', name: 'Q4 NPS', brand: 'Acme', throttle_days: 0 });
    const batch = await apiOk('POST', `/api/v1/surveys/${survey.id}/invitations`, {
      channel: 'link',
      contacts: [
        { email: 'ada@example.com', name: 'Ada Lovelace', external_id: 'cus_42', properties: { plan: 'enterprise', company: 'Analytical Engines', value: 120000 } },
        { email: 'bob@example.org', name: 'Bob Babbage', properties: { plan: 'starter' } },
      ],
    });
    const token = batch.items[0].url.split('/').pop();
    const res = await fetch(`${base}/s/${token}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ score: '3', comment: 'Exports are far too slow.' }),
      redirect: 'manual',
    });
    assert.equal(res.status, 303);
    const found = await apiOk('GET', '/api/v1/contacts?email=ada@example.com');
    ada = found.items[0];
    await apiOk('PATCH', `/api/v1/contacts/${ada.id}`, { unsubscribed: true });
  });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
    await must('the admin signs in through the link', async () => {
      await page.goto(link);
      await submitBy(page, () => page.getByRole('button', { name: 'Sign in' }).click());
      assert.match(page.url(), /\/app\//);
    });

    // ---- contacts
    await must('"Contacts" in the top bar lists the customers', async () => {
      await page.getByRole('link', { name: 'Contacts', exact: true }).click();
      assert.equal(await h1(page), 'Contacts');
      const rows = await page.locator('table.list tbody').innerText();
      assert.match(rows, /Ada Lovelace/);
      assert.match(rows, /Bob Babbage/);
    });
    await check('searching by a property finds only Ada', async () => {
      await page.getByLabel('Search contacts').fill('plan=enterprise');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForLoadState('load');
      const rows = await page.locator('table.list tbody').innerText();
      assert.match(rows, /Ada Lovelace/);
      assert.doesNotMatch(rows, /Bob Babbage/);
    });
    await inspect(page, 'app-admin-contacts');
    await must("Ada's page shows her invitation, answer and task", async () => {
      await page.getByRole('link', { name: 'Ada Lovelace' }).click();
      assert.equal(await h1(page), 'Ada Lovelace');
      const main = await page.locator('main').innerText();
      for (const s of ['cus_42', 'Analytical Engines', '120,000', 'Q4 NPS', 'responded', '3/10 detractor', 'Exports are far too slow.', 'Unsubscribed']) {
        assert.ok(main.includes(s), `${s} missing`);
      }
      assert.equal(await page.locator('a[href^="/app/followups/fup_"]').count(), 1);
    });
    await inspect(page, 'app-admin-contact');
    await must('the admin re-subscribes Ada', async () => {
      await submitBy(page, () => page.getByRole('button', { name: 'Re-subscribe' }).click());
      assert.match(await page.locator('.notice').innerText(), /Re-subscribed/);
      assert.match(await page.locator('main').innerText(), /Re-subscribed by Bea Boss/);
      const c = await apiOk('GET', `/api/v1/contacts/${ada.id}`);
      assert.equal(c.unsubscribed_at, null);
    });
    await check('the erase link asks first and says what stays', async () => {
      await page.getByRole('link', { name: 'Erase this contact…' }).click();
      assert.equal(await h1(page), 'Erase Ada Lovelace?');
      assert.match(await page.locator('main').innerText(), /Kept, anonymous/);
    });
    await inspect(page, 'app-admin-erase');

    // ---- settings: API keys
    let key;
    await must('"Settings" creates an API key and shows it once', async () => {
      await page.getByRole('link', { name: 'Settings', exact: true }).click();
      assert.equal(await h1(page), 'Settings');
      await page.getByLabel('Name', { exact: true }).fill('Helpdesk sync');
      await page.getByLabel('Role', { exact: true }).selectOption('agent');
      await submitBy(page, () => page.getByRole('button', { name: 'Create key' }).click());
      key = await page.getByLabel('API key').inputValue();
      assert.match(key, /^cl_/);
    });
    await check('the copy button copies the key', async () => {
      await page.getByRole('button', { name: 'Copy' }).click();
      await waitFor('"Copied."', async () => (await page.locator('.copy-status').innerText()) === 'Copied.', 5_000);
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
    });
    await inspect(page, 'app-admin-key-created');
    await must('the key works against the API and its last use shows', async () => {
      const r = await fetch(`${base}/api/v1/followups`, { headers: { Authorization: `Bearer ${key}` } });
      assert.equal(r.status, 200);
      await page.goto(`${base}/app/settings`);
      const row = page.locator('tr', { hasText: 'Helpdesk sync' });
      assert.match(await row.innerText(), /just now/);
      assert.doesNotMatch(await row.innerText(), /never/);
      assert.ok(!(await page.content()).includes(key), 'the key is not shown again');
    });
    await inspect(page, 'app-admin-settings');

    // ---- settings: webhooks
    let secret;
    await must('a webhook is created and its secret shown once', async () => {
      await page.getByLabel('URL').fill(receiver.url);
      await page.getByLabel('followup.created').check();
      await submitBy(page, () => page.getByRole('button', { name: 'Add webhook' }).click());
      secret = await page.getByLabel('Signing secret').inputValue();
      assert.match(secret, /^whsec_/);
      await page.getByRole('link', { name: 'Go to the webhook' }).click();
      assert.match(await h1(page), /Webhook/);
      assert.ok(!(await page.content()).includes(secret));
    });
    await must('a test event reaches the receiver, signed', async () => {
      await submitBy(page, () => page.getByRole('button', { name: 'Send a test event' }).click());
      const r = await waitFor('a request at the receiver', () => receiver.got[0], 15_000);
      assert.equal(JSON.parse(r.body).type, 'webhook.test');
      assert.ok(signatureOk(r, secret), 'the signature checks with the secret shown');
      await waitFor(
        'the attempt in the log',
        async () => {
          await page.reload();
          return /HTTP 200/.test(await page.locator('.deliveries').innerText());
        },
        15_000,
        300,
      );
    });
    await must('changing the events is saved', async () => {
      await page.getByLabel('response.created').check();
      await submitBy(page, () => page.getByRole('button', { name: 'Save' }).click());
      assert.match(await page.locator('.notice').innerText(), /Saved/);
      const list = await apiOk('GET', '/api/v1/webhooks');
      assert.deepEqual(list.items[0].events.sort(), ['followup.created', 'response.created']);
    });
    await must('redeliver sends the same delivery again', async () => {
      await submitBy(page, () => page.getByRole('button', { name: /^Redeliver/ }).first().click());
      await waitFor('a second request', () => receiver.got[1], 15_000);
      assert.equal(receiver.got[1].headers['webhook-id'], receiver.got[0].headers['webhook-id']);
      await waitFor(
        'two attempts in the log',
        async () => {
          await page.reload();
          return (await page.locator('table.attempts tbody tr').count()) === 2;
        },
        15_000,
        300,
      );
    });
    await inspect(page, 'app-admin-webhook');
    await must('rotating the secret shows the new one once; both sign for the overlap', async () => {
      await submitBy(page, () => page.getByRole('button', { name: 'Rotate secret' }).click());
      const fresh = await page.getByLabel('Signing secret').inputValue();
      assert.match(fresh, /^whsec_[A-Za-z0-9+/]{43}=$/);
      assert.notEqual(fresh, secret);
      await inspect(page, 'app-admin-webhook-rotated');
      await page.getByRole('link', { name: 'Back to the webhook' }).click();
      assert.ok(!(await page.content()).includes(fresh), 'shown once');
      assert.match(await page.locator('#secret-h + p + p').innerText(), /previous secret still signs until/);
      const before = receiver.got.length;
      await submitBy(page, () => page.getByRole('button', { name: 'Send a test event' }).click());
      const r = await waitFor('a request signed after the rotation', () => receiver.got[before], 15_000);
      assert.equal(String(r.headers['webhook-signature']).split(' ').length, 2);
      assert.ok(signatureOk(r, fresh), 'signed with the new secret');
      assert.ok(signatureOk(r, secret), 'and with the previous one');
    });
    await check('no script errors on any page', () => assert.deepEqual(errors, []));
  } finally {
    await browser.close();
  }
}

let crashed = null;
try {
  await main();
} catch (e) {
  crashed = e;
}
await finish(crashed);

#!/usr/bin/env node
// Browser tests of the surveys pages (/app/surveys): a lead creates a survey in the browser,
// watches the live preview (the real email and survey page templates) follow the form,
// sends themself a test email, copies the public link, invites 50 customers from a CSV file,
// checks the per-row preview, confirms, and the 50 emails arrive at the SMTP sink; a send
// that the SMTP server refuses shows on the queue page with its error and is retried from
// there; archiving asks first. Every page is audited with axe-core and screenshotted at 375
// and 1280 px into target/screenshots/app-surveys-*.png.
//
// The SMTP sink here refuses recipients named bounce@… (550) until told otherwise, and
// records everything else in lib.mjs's `inbox`.
//
// Run: `cargo build && node tests/browser/app_surveys.mjs` (after `npm ci` here).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { simpleParser } from 'mailparser';
import { chromium } from 'playwright-core';
import { SMTPServer } from 'smtp-server';

import {
  BINARY,
  CHROMIUM,
  SHOTS,
  apiOk,
  base,
  check,
  cleanups,
  finish,
  freePort,
  h1,
  inbox,
  inspect,
  must,
  runDir,
  serverEnv,
  startServer,
  submitBy,
  waitFor,
} from './lib.mjs';

const LEAD = { email: 'lea@acme.test', name: 'Lea Lead' };
let refuseBounces = true;

/** An SMTP sink that refuses bounce@… while `refuseBounces` holds. */
async function startRefusingSink() {
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, session, callback) {
      if (refuseBounces && address.address.startsWith('bounce@')) {
        const err = new Error('5.1.1 mailbox unavailable');
        err.responseCode = 550;
        return callback(err);
      }
      return callback();
    },
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

/** The text of the sandboxed preview frame `kind` (email or page), once it holds `want`. */
async function frameText(page, kind, want) {
  return waitFor(`the ${kind} preview to show ${want}`, async () => {
    const el = await page.$(`iframe[data-preview-kind="${kind}"]`);
    const frame = await el.contentFrame();
    if (!frame) return null;
    const text = await frame.evaluate(() => document.body.innerText);
    return text.includes(want) ? text : null;
  }, 10_000);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = runDir('closeloop-app-surveys-');
  const smtpPort = await startRefusingSink();
  await must('server starts and /readyz answers 200', () =>
    startServer(tmp, smtpPort, { EMAIL_RETRY_BASE_SECONDS: '1' }),
  );
  let signInLink;
  await must('`closeloop user create` makes the lead (an admin)', () => {
    const cli = spawnSync(
      BINARY,
      ['user', 'create', '--email', LEAD.email, '--name', LEAD.name, '--role', 'admin'],
      { env: serverEnv, encoding: 'utf8' },
    );
    assert.equal(cli.status, 0, cli.stderr);
    signInLink = cli.stdout.trim().split('\n').pop();
  });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.on('page', (p) => {
      p.on('pageerror', (e) => errors.push(`${p.url()}: ${e.message}`));
      p.on('console', (m) => {
        if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) errors.push(`${p.url()}: ${m.text()}`);
      });
    });
    const lea = await context.newPage();
    await must('the lead signs in and finds "Surveys" in the navigation', async () => {
      await lea.goto(signInLink);
      await submitBy(lea, () => lea.getByRole('button', { name: 'Sign in' }).click());
      await lea.getByRole('link', { name: 'Surveys' }).click();
      await lea.waitForLoadState('load');
      assert.equal(await h1(lea), 'Surveys');
      assert.match(await lea.locator('main').innerText(), /No surveys yet/);
    });

    // ---- create, with the live preview
    await must('"New survey" opens the editor with both previews', async () => {
      await lea.getByRole('link', { name: 'New survey' }).click();
      await lea.waitForLoadState('load');
      assert.equal(await h1(lea), 'New survey');
      await frameText(lea, 'email', 'How likely are you to recommend');
      await frameText(lea, 'page', 'How likely are you to recommend');
    });
    await must('the previews follow the form as the lead types (no save)', async () => {
      await lea.getByLabel('Name', { exact: true }).fill('Q1 NPS');
      await lea.getByLabel('Brand', { exact: true }).fill('Acme');
      await lea.getByLabel('Brand colour').fill('#0a7d4f');
      await frameText(lea, 'email', 'recommend Acme');
      await frameText(lea, 'page', 'recommend Acme');
      await lea.getByLabel('Language').selectOption('de');
      await frameText(lea, 'page', 'Sie Acme einem Freund');
      await frameText(lea, 'email', 'Sie Acme einem Freund');
      await lea.getByLabel('Language').selectOption('en');
      await frameText(lea, 'email', 'How likely are you to recommend Acme');
      const list = await apiOk('GET', '/api/v1/surveys');
      assert.equal(list.items.length, 0, 'nothing saved yet');
    });
    await inspect(lea, 'app-surveys-editor');
    await check('a bad colour is shown beside its field and the typed values stay', async () => {
      await lea.getByLabel('Brand colour').fill('green');
      await submitBy(lea, () => lea.getByRole('button', { name: 'Create survey' }).click());
      assert.match(await lea.locator('#e-brand_color').innerText(), /must be a colour such as #1f6feb/);
      assert.equal(await lea.getByLabel('Brand', { exact: true }).inputValue(), 'Acme');
      await inspect(lea, 'app-surveys-editor-errors');
      await lea.getByLabel('Brand colour').fill('#0a7d4f');
    });
    await lea.getByLabel('Public link').check();
    let survey;
    await must('"Create survey" saves it through the API\'s rules', async () => {
      await submitBy(lea, () => lea.getByRole('button', { name: 'Create survey' }).click());
      assert.match(await lea.locator('.notice').innerText(), /Survey created/);
      const list = await apiOk('GET', '/api/v1/surveys');
      assert.equal(list.items.length, 1);
      survey = list.items[0];
      assert.equal(survey.brand, 'Acme');
      assert.equal(survey.brand_color, '#0a7d4f');
      assert.ok(survey.public_url, 'a public link');
    });
    await check('the public link can be copied', async () => {
      assert.equal(await lea.locator('#f-public-url').inputValue(), survey.public_url);
      await lea.getByRole('button', { name: 'Copy' }).click();
      await waitFor('a copy status', async () => (await lea.locator('.copy-status').innerText()).length > 0);
    });
    await check('"Send me a test email" reaches the lead and invites nobody', async () => {
      const before = inbox.length;
      await submitBy(lea, () => lea.getByRole('button', { name: 'Send me a test email' }).click());
      assert.match(await lea.locator('.notice').innerText(), /Test email queued/);
      const got = await waitFor('the test email', () => inbox.slice(before).find((m) => m.to.includes(LEAD.email)));
      assert.match(got.mail.subject, /^\[Test\] /);
      assert.match(got.mail.html, /How likely are you to recommend Acme/);
      const inv = await apiOk('GET', `/api/v1/invitations?survey_id=${survey.id}`);
      assert.equal(inv.items.length, 0);
    });

    // ---- invite 50 customers from a CSV file
    const csvPath = path.join(tmp, 'customers.csv');
    const rows = ['email,name,external_id,plan,value'];
    for (let i = 1; i <= 50; i += 1) rows.push(`customer${i}@example.com,Customer ${i},cus_${i},${i % 2 ? 'pro' : 'free'},${i * 100}`);
    fs.writeFileSync(csvPath, `${rows.join('\n')}\n`);
    await must('the invite page takes a CSV file and previews each row, queuing nothing', async () => {
      await lea.goto(`${base}/app/surveys/${survey.id}/invite`);
      await inspect(lea, 'app-surveys-invite');
      await lea.getByLabel('Or upload a CSV file').setInputFiles(csvPath);
      await submitBy(lea, () => lea.getByRole('button', { name: 'Check the list' }).click());
      assert.match(await h1(lea), /check$/);
      assert.match(await lea.locator('ul.summary').innerText(), /50\s+rows[\s\S]*50\s+will be sent[\s\S]*0\s+suppressed[\s\S]*0\s+rejected/);
      assert.equal(await lea.locator('tr.outcome-scheduled').count(), 50);
      const inv = await apiOk('GET', `/api/v1/invitations?survey_id=${survey.id}`);
      assert.equal(inv.items.length, 0, 'nothing queued before the confirmation');
    });
    await inspect(lea, 'app-surveys-invite-preview');
    let confirmation;
    await must('confirming queues them, and the 50 emails arrive at the SMTP sink', async () => {
      const before = inbox.length;
      const form = lea.locator('form.confirm-form');
      confirmation = {
        action: `${base}${await form.getAttribute('action')}`,
        fields: {
          csrf_token: await form.locator('input[name=csrf_token]').inputValue(),
          key: await form.locator('input[name=key]').inputValue(),
          batch: await form.locator('input[name=batch]').inputValue(),
        },
      };
      await submitBy(lea, () => lea.getByRole('button', { name: 'Queue 50 invitations' }).click());
      assert.match(await h1(lea), /Send queue/);
      assert.match(await lea.locator('.notice').innerText(), /Invitations queued/);
      const got = await waitFor('50 survey emails', () => {
        const mails = inbox.slice(before).filter((m) => m.to.some((t) => /^customer\d+@example\.com$/.test(t)));
        return mails.length >= 50 ? mails : null;
      }, 30_000);
      assert.equal(new Set(got.flatMap((m) => m.to)).size, 50, 'one email per customer');
      assert.match(got[0].mail.html, /How likely are you to recommend Acme/);
    });
    await check('the same confirmation submitted again invites nobody twice', async () => {
      // As a second click or a resent form would: the same fields, the same session.
      const res = await lea.request.post(confirmation.action, {
        form: confirmation.fields,
        headers: { Origin: base },
        maxRedirects: 0,
      });
      assert.equal(res.status(), 303);
      assert.match(res.headers().location, /notice=already$/);
      const inv = await apiOk('GET', `/api/v1/invitations?survey_id=${survey.id}&limit=100`);
      assert.equal(inv.items.length, 50);
    });

    // ---- a refused send, retried from the queue page
    await must('a send the SMTP server refuses shows on the queue page with its error', async () => {
      await lea.goto(`${base}/app/surveys/${survey.id}/invite`);
      await lea.getByLabel('Paste addresses').fill('Bo Bounce <bounce@example.com>\nnot-an-email');
      await submitBy(lea, () => lea.getByRole('button', { name: 'Check the list' }).click());
      assert.match(await lea.locator('tr.outcome-rejected').innerText(), /invalid/);
      await submitBy(lea, () => lea.getByRole('button', { name: 'Queue 1 invitation' }).click());
      await waitFor('the failed send', async () => {
        await lea.reload();
        return (await lea.locator('table.failed').count()) > 0;
      }, 20_000, 500);
      const row = await lea.locator('table.failed tbody tr').first().innerText();
      assert.match(row, /bounce@example\.com/);
      assert.match(row, /550/);
    });
    await inspect(lea, 'app-surveys-queue');
    await check('"Retry" puts it back, and it arrives once the server accepts it', async () => {
      refuseBounces = false;
      const before = inbox.length;
      await submitBy(lea, () => lea.getByRole('button', { name: 'Retry sending to bounce@example.com' }).click());
      assert.match(await lea.locator('.notice').innerText(), /put back in the queue/);
      await waitFor('the retried email', () => inbox.slice(before).find((m) => m.to.includes('bounce@example.com')), 20_000);
    });

    // ---- the list, and archiving
    await must('the list shows the figures of the survey', async () => {
      await lea.goto(`${base}/app/surveys`);
      const row = await lea.locator('table.surveys tbody tr').first().innerText();
      assert.match(row, /Q1 NPS/);
      assert.match(row, /51/, 'sent');
    });
    await inspect(lea, 'app-surveys-list');
    await check('archiving asks first, then moves the survey to the archived tab', async () => {
      await lea.goto(`${base}/app/surveys/${survey.id}/edit`);
      await lea.getByRole('link', { name: 'Archive this survey…' }).click();
      await lea.waitForLoadState('load');
      assert.match(await h1(lea), /^Archive/);
      await inspect(lea, 'app-surveys-archive');
      const still = await apiOk('GET', `/api/v1/surveys/${survey.id}`);
      assert.equal(still.status, 'active');
      await submitBy(lea, () => lea.getByRole('button', { name: 'Archive survey' }).click());
      assert.match(await lea.locator('.notice').innerText(), /Survey archived/);
      assert.match(await lea.locator('table.surveys').innerText(), /Q1 NPS/);
    });
  } finally {
    await browser.close();
  }
  await check('no script errors on any page', () => assert.deepEqual(errors, []));
}

let crashed = null;
try {
  await main();
} catch (e) {
  crashed = e;
}
await finish(crashed);

#!/usr/bin/env node
// Browser tests of the support lead's workspace (/app).
//
// Starts an in-process SMTP sink and a real `target/debug/closeloop` (SQLite, or the database
// in CLOSELOOP_TEST_DATABASE_URL), creates the first admin with `closeloop user create`, then
// drives Debian's Chromium with playwright-core as the team would: sign in through the link
// emailed to the SMTP sink, invite members, and check that a reader cannot act, that a POST
// without the CSRF token is refused, and that sign-out and deactivation end sessions. Every
// page is audited with axe-core (a `serious` or `critical` violation fails) and screenshotted
// at 375 and 1280 px into target/screenshots/app-*.png.
//
// Run from anywhere: `node tests/browser/app.mjs` (after `cargo build` and `npm ci` here).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

import { chromium } from 'playwright-core';

import {
  BINARY,
  CHROMIUM,
  SHOTS,
  base,
  check,
  finish,
  inbox,
  inspect,
  must,
  runDir,
  serverEnv,
  startServer,
  startSmtpSink,
  submitBy,
  waitFor,
  h1,
} from './lib.mjs';

const ADMIN = { email: 'lea@acme.test', name: 'Lea Lead' };

/** The sign-in link of the newest email to `to` (after `after` emails). */
async function linkFor(to, after = 0) {
  const got = await waitFor(
    `a sign-in email to ${to}`,
    () => inbox.slice(after).find((m) => m.to.includes(to) && /\/app\/login\//.test(m.mail.text || '')),
    20_000,
  );
  const m = got.mail.text.match(/(https?:\/\/\S+\/app\/login\/[A-Za-z0-9_-]{43}(\?\S*)?)/);
  assert.ok(m, `no sign-in link in: ${got.mail.text}`);
  return { link: m[1], mail: got.mail };
}

/** Signs in through the login form and the emailed link; ends on `next` (or the inbox). */
async function signInByEmail(page, email) {
  const before = inbox.length;
  await page.goto(`${base}/app/login`);
  await page.getByLabel('Work email').first().fill(email);
  await submitBy(page, () => page.getByRole('button', { name: 'Email me a sign-in link' }).click());
  assert.equal(await h1(page), 'Check your email');
  const { link } = await linkFor(email, before);
  await page.goto(link);
  await submitBy(page, () => page.getByRole('button', { name: 'Sign in' }).click());
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = runDir('closeloop-app-');
  const smtpPort = await startSmtpSink();
  await must('server starts and /readyz answers 200', () =>
    startServer(tmp, smtpPort, { TEAM_EMAIL: 'leads@acme.test', ALERT_DELAY_SECONDS: '0' }),
  );
  await must('`closeloop user create` makes the first admin and prints a link last', () => {
    const cli = spawnSync(
      BINARY,
      ['user', 'create', '--email', ADMIN.email, '--name', ADMIN.name, '--role', 'admin'],
      { env: serverEnv, encoding: 'utf8' },
    );
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout.trim().split('\n').pop(), /^http:\/\/127\.0\.0\.1:\d+\/app\/login\/[A-Za-z0-9_-]{43}$/);
  });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const errors = [];
  const newContext = async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.on('page', (p) => {
      p.on('pageerror', (e) => errors.push(`${p.url()}: ${e.message}`));
      p.on('console', (m) => {
        if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) errors.push(`${p.url()}: ${m.text()}`);
      });
    });
    return context;
  };
  try {
    const lea = await (await newContext()).newPage();

    // ---- sign-in through the emailed link
    await must('a page opened without a session asks to sign in, and comes back after', async () => {
      await lea.goto(`${base}/app/team`);
      assert.match(lea.url(), /\/app\/login\?next=%2Fapp%2Fteam$/);
      assert.equal(await h1(lea), 'Sign in to Closeloop');
    });
    await inspect(lea, 'app-login');
    await must('the login form emails a link (the SMTP sink receives it)', async () => {
      await lea.getByLabel('Work email').first().fill('LEA@acme.test');
      await submitBy(lea, () => lea.getByRole('button', { name: 'Email me a sign-in link' }).click());
      assert.equal(await h1(lea), 'Check your email');
    });
    await inspect(lea, 'app-check-email');
    let link;
    await must('the email is multipart and holds a one-time link back to the page asked for', async () => {
      const got = await linkFor(ADMIN.email);
      link = got.link;
      assert.ok(got.mail.html, 'an HTML part');
      assert.match(link, /\?next=%2Fapp%2Fteam$/);
    });
    await must('opening the link shows one "Sign in" button and consumes nothing', async () => {
      await lea.goto(link);
      await lea.reload();
      assert.match(await lea.locator('main').innerText(), /signing in as lea@acme\.test/);
    });
    await inspect(lea, 'app-link');
    await must('pressing "Sign in" starts the session and lands on the page asked for', async () => {
      await submitBy(lea, () => lea.getByRole('button', { name: 'Sign in' }).click());
      assert.equal(new URL(lea.url()).pathname, '/app/team');
      assert.equal(await h1(lea), 'Team');
      const cookies = await lea.context().cookies();
      const c = cookies.find((k) => k.name === 'closeloop_session');
      assert.ok(c && c.httpOnly && c.sameSite === 'Lax' && c.path === '/app', JSON.stringify(c));
    });
    await check('the used link cannot sign in again', async () => {
      const other = await (await newContext()).newPage();
      await other.goto(link);
      assert.match(await h1(other), /already used/);
      await other.context().close();
    });

    // ---- the team
    await must('the admin invites an agent and a reader from the team page', async () => {
      for (const [name, email, role] of [
        ['Ash Agent', 'ash@acme.test', 'agent'],
        ['Rey Reader', 'rey@acme.test', 'reader'],
      ]) {
        await lea.getByLabel('Name', { exact: true }).fill(name);
        await lea.getByLabel('Email', { exact: true }).fill(email);
        await lea.getByLabel('Role', { exact: true }).selectOption(role);
        await submitBy(lea, () => lea.getByRole('button', { name: 'Send invitation' }).click());
        assert.match(await lea.locator('.notice').innerText(), new RegExp(`Invited ${name}`));
      }
      assert.match(await lea.locator('table.list').innerText(), /Ash Agent[\s\S]*Rey Reader|Rey Reader[\s\S]*Ash Agent/);
    });
    await inspect(lea, 'app-team');
    await lea.goto(`${base}/app/profile`);
    await inspect(lea, 'app-profile');

    const rey = await (await newContext()).newPage();
    await must('the reader signs in with the invitation email', async () => {
      const { link: invite, mail } = await linkFor('rey@acme.test');
      assert.match(mail.text, /Lea Lead invited you/);
      await rey.goto(invite);
      await submitBy(rey, () => rey.getByRole('button', { name: 'Sign in' }).click());
      await rey.goto(`${base}/app/team`);
      assert.equal(await h1(rey), 'Team');
    });
    await check('a reader sees no action forms, and a forged POST is refused', async () => {
      assert.equal(await rey.getByRole('button', { name: 'Send invitation' }).count(), 0);
      assert.equal(await rey.getByRole('button', { name: /Deactivate/ }).count(), 0);
      const status = await rey.evaluate(async () => {
        const csrf = document.querySelector('input[name=csrf_token]').value;
        const body = new URLSearchParams({ csrf_token: csrf, email: 'x@acme.test', name: 'X', role: 'admin' });
        return (await fetch('/app/team', { method: 'POST', body })).status;
      });
      assert.equal(status, 403);
    });
    await check('a POST without the CSRF token is refused and changes nothing', async () => {
      const status = await lea.evaluate(async () => {
        const body = new URLSearchParams({ name: 'Mallory' });
        return (await fetch('/app/profile', { method: 'POST', body })).status;
      });
      assert.equal(status, 403);
      await lea.goto(`${base}/app/profile`);
      assert.equal(await lea.getByLabel('Name').inputValue(), ADMIN.name);
    });

    const ash = await (await newContext()).newPage();
    await must('the agent signs in by email', async () => {
      await signInByEmail(ash, 'ash@acme.test');
      await ash.goto(`${base}/app/profile`);
      assert.equal(await ash.getByLabel('Name').inputValue(), 'Ash Agent');
    });
    await check('deactivating a member ends their session at once', async () => {
      await lea.goto(`${base}/app/team`);
      await submitBy(lea, () => lea.getByRole('button', { name: 'Deactivate Ash Agent' }).click());
      assert.match(await lea.locator('.notice').innerText(), /deactivated/);
      await ash.reload();
      assert.equal(new URL(ash.url()).pathname, '/app/login');
    });
    await check('sign-out ends the session', async () => {
      await submitBy(rey, () => rey.getByRole('button', { name: 'Sign out' }).click());
      assert.equal(new URL(rey.url()).pathname, '/app/login');
      assert.match(await rey.locator('main').innerText(), /You are signed out/);
      await rey.goto(`${base}/app/team`);
      assert.equal(new URL(rey.url()).pathname, '/app/login');
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

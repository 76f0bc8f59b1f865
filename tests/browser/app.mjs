#!/usr/bin/env node
// Browser tests of the support lead's workspace (/app).
//
// Starts an in-process SMTP sink and a real `target/debug/closeloop` (SQLite, or the database
// in CLOSELOOP_TEST_DATABASE_URL), creates the first admin with `closeloop user create`, then
// drives Debian's Chromium with playwright-core as the team would: sign in through the link
// emailed to the SMTP sink, invite members, follow a detractor alert's link to the task page,
// triage it end to end (assign, note, a reply received by the SMTP sink, resolve with an
// outcome), bulk-assign, triage with the keyboard only, watch a new detractor appear live, and
// check that a reader cannot act, that a POST without the CSRF token is refused, and that
// sign-out and deactivation end sessions. Every
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
  apiOk,
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

/** A detractor: a link invitation for `contact`, answered with `score` through the page. */
async function detractor(survey, contact, score, comment) {
  const batch = await apiOk('POST', `/api/v1/surveys/${survey.id}/invitations`, {
    channel: 'link',
    contacts: [contact],
  });
  const url = batch.items[0].url;
  const token = url.split('/').pop();
  const res = await fetch(`${base}/s/${token}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ score: String(score), comment }),
    redirect: 'manual',
  });
  assert.equal(res.status, 303, `answering ${contact.email}`);
}

/** The task of the customer with this email, as the API lists it. */
async function taskOf(email) {
  const list = await apiOk('GET', '/api/v1/followups?status=open,in_progress,resolved,dismissed&limit=100');
  const t = list.items.find((i) => i.contact_email === email);
  assert.ok(t, `a task for ${email}`);
  return t;
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


    // ---- a detractor: from the alert email to resolved
    let survey;
    await must('a survey, and Ada answers 2 with a comment', async () => {
      survey = await apiOk('POST', '/api/v1/surveys', { kind: 'nps', name: 'Q4 NPS', brand: 'Acme' });
      await detractor(
        survey,
        { email: 'ada@example.com', name: 'Ada Lovelace', properties: { company: 'Analytical Engines', plan: 'enterprise', value: 120000 } },
        2,
        'Exports have been broken for a week.\nPlease fix.',
      );
    });
    let alertLink;
    await must('the alert email reaches the team and links to the task page', async () => {
      const got = await waitFor(
        'the alert email',
        () => inbox.find((m) => m.to.includes('leads@acme.test') && /Detractor/.test(m.mail.subject || '')),
        20_000,
      );
      assert.ok(got.mail.html, 'multipart');
      assert.match(got.mail.text, /Ada Lovelace/);
      assert.match(got.mail.text, /Analytical Engines/);
      const m = got.mail.text.match(/(https?:\/\/\S+\/app\/followups\/fup_[0-9A-Za-z]{26})/);
      assert.ok(m, got.mail.text);
      alertLink = m[1];
    });
    const lead = await (await newContext()).newPage();
    await must('clicking the alert link without a session signs in by email and lands on the task', async () => {
      await lead.goto(alertLink);
      assert.equal(new URL(lead.url()).pathname, '/app/login');
      const before = inbox.length;
      await lead.getByLabel('Work email').first().fill(ADMIN.email);
      await submitBy(lead, () => lead.getByRole('button', { name: 'Email me a sign-in link' }).click());
      const { link: back } = await linkFor(ADMIN.email, before);
      await lead.goto(back);
      await submitBy(lead, () => lead.getByRole('button', { name: 'Sign in' }).click());
      assert.equal(lead.url(), alertLink.replace(/^https?:\/\/[^/]+/, base));
      assert.equal(await h1(lead), 'Ada Lovelace');
    });
    await inspect(lead, 'app-task');
    await must('the detractor is at the top of the open inbox, with customer, company and survey', async () => {
      await lead.goto(`${base}/app/followups`);
      const first = lead.locator('#inbox-rows tr.task').first();
      const text = await first.innerText();
      for (const want of ['Ada Lovelace', 'Analytical Engines', 'Q4 NPS', 'Exports have been broken', 'enterprise']) {
        assert.ok(text.includes(want), `${want} in: ${text}`);
      }
    });
    await inspect(lead, 'app-inbox');
    await must('triage on the task page: assign to me, note, reply, resolve with an outcome', async () => {
      await lead.locator('#inbox-rows tr.task').first().locator('a.row-link').click();
      await lead.waitForLoadState('load');
      await submitBy(lead, () => lead.getByRole('button', { name: 'Assign to me' }).click());
      await lead.locator('#note-body').fill('Called Ada: the fix ships Friday.');
      await submitBy(lead, () => lead.getByRole('button', { name: 'Add note' }).click());
      const before = inbox.length;
      assert.match(await lead.locator('#reply-body').inputValue(), /Exports have been broken/);
      await submitBy(lead, () => lead.getByRole('button', { name: 'Preview' }).click());
      await submitBy(lead, () => lead.getByRole('button', { name: 'Send reply' }).click());
      const reply = await waitFor('the reply', () => inbox.slice(before).find((m) => m.to.includes('ada@example.com')), 20_000);
      assert.match(reply.mail.text, /Exports have been broken/);
      await waitFor('the reply shown as sent', async () => {
        await lead.reload();
        return /Sent/.test(await lead.locator('main').innerText());
      }, 20_000, 500);
      await lead.locator('#outcome').selectOption('explained');
      await lead.locator('#close-note').fill('Explained the workaround.');
      await submitBy(lead, () => lead.locator('[data-key-resolve]').click());
      const task = await taskOf('ada@example.com');
      assert.equal(task.status, 'resolved');
      assert.equal(task.outcome, 'explained');
      assert.equal(task.assignee, ADMIN.email);
      const detail = await apiOk('GET', `/api/v1/followups/${task.id}`);
      const mine = detail.activity.filter((a) => a.actor === `user:${ADMIN.email}`);
      assert.ok(mine.length >= 4, JSON.stringify(detail.activity));
      assert.ok(mine.every((a) => a.actor_name === ADMIN.name));
    });
    await inspect(lead, 'app-task-resolved');

    await must('bulk: two detractors assigned to the agent in one submit', async () => {
      await detractor(survey, { email: 'bob@globex.test', name: 'Bob Stone', properties: { company: 'Globex' } }, 4, 'Slow support.');
      await detractor(survey, { email: 'cy@initech.test', name: 'Cy Young', properties: { company: 'Initech' } }, 5, 'Too expensive.');
      await lead.goto(`${base}/app/followups`);
      await lead.getByLabel('Select the task of Bob Stone').check();
      await lead.getByLabel('Select the task of Cy Young').check();
      await lead.locator('#b-assignee').selectOption('ash@acme.test');
      await submitBy(lead, () => lead.getByRole('button', { name: 'Apply to selected' }).click());
      assert.match(await lead.locator('.notice').innerText(), /2 changed/);
      assert.equal((await taskOf('bob@globex.test')).assignee, 'ash@acme.test');
      assert.equal((await taskOf('cy@initech.test')).assignee, 'ash@acme.test');
    });
    await must('keyboard only: j selects, a assigns to me, e resolves, ? lists the keys, Enter opens', async () => {
      await lead.goto(`${base}/app/followups?sort=created_at`);
      await lead.keyboard.press('j');
      const selected = lead.locator('#inbox-rows tr.task.selected');
      assert.equal(await selected.count(), 1, 'one row is selected');
      const id = await selected.getAttribute('data-id');
      await Promise.all([lead.waitForNavigation(), lead.keyboard.press('a')]);
      assert.match(await lead.locator('.notice').innerText(), /1 changed/);
      const byId = async () => apiOk('GET', `/api/v1/followups/${id}`);
      assert.equal((await byId()).assignee, ADMIN.email);
      assert.equal(await lead.locator('#inbox-rows tr.task.selected').getAttribute('data-id'), id, 'the selection stays');
      await Promise.all([lead.waitForNavigation(), lead.keyboard.press('e')]);
      assert.match(await lead.locator('.notice').innerText(), /1 changed/);
      assert.equal((await byId()).status, 'resolved');
      await lead.keyboard.press('?');
      assert.ok(await lead.locator('#keys-help').isVisible(), 'the shortcut list');
      await lead.keyboard.press('Escape');
      assert.ok(!(await lead.locator('#keys-help').isVisible()));
      await lead.keyboard.press('j');
      const next = lead.locator('#inbox-rows tr.task.selected');
      const name = (await next.locator('a.row-link').innerText()).trim();
      await Promise.all([lead.waitForNavigation(), lead.keyboard.press('Enter')]);
      assert.equal(await h1(lead), name);
    });
    await must('a new detractor appears in the open inbox within 5 seconds, without a reload', async () => {
      await lead.goto(`${base}/app/followups`);
      const started = Date.now();
      await detractor(survey, { email: 'dee@umbrella.test', name: 'Dee Ray' }, 1, 'Nothing works.');
      await lead.locator('#inbox-rows tr.task', { hasText: 'Dee Ray' }).waitFor({ timeout: 5_000 });
      console.log(`       the new row appeared after ${Date.now() - started} ms`);
    });

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
    await check('a reader sees a task and the inbox with no action forms, and cannot act', async () => {
      const task = await taskOf('bob@globex.test');
      await rey.goto(`${base}/app/followups/${task.id}`);
      assert.equal(await h1(rey), 'Bob Stone');
      assert.equal(await rey.getByRole('button', { name: 'Assign to me' }).count(), 0);
      assert.equal(await rey.locator('#note-body').count(), 0);
      assert.equal(await rey.getByRole('button', { name: 'Send reply' }).count(), 0);
      await rey.goto(`${base}/app/followups`);
      assert.equal(await rey.locator('#inbox-rows input[type=checkbox]').count(), 0);
      const status = await rey.evaluate(async (id) => {
        const csrf = document.querySelector('input[name=csrf_token]').value;
        const body = new URLSearchParams({ csrf_token: csrf, assignee: 'me' });
        return (await fetch(`/app/followups/${id}/assign`, { method: 'POST', body })).status;
      }, task.id);
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

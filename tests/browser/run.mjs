#!/usr/bin/env node
// Browser tests of Closeloop's customer pages.
//
// Starts an in-process SMTP sink and a real `target/debug/closeloop` on free loopback ports,
// sends a real survey email, then drives Debian's Chromium (/usr/bin/chromium) with
// playwright-core through the pages a customer sees: answer from the email's score link,
// change the answer, edit the comment, unsubscribe, the public link (also without
// JavaScript), and the 404 and 410 pages. Every page is audited with axe-core (a `serious` or
// `critical` violation fails), screenshotted at 375 and 1280 px into target/screenshots/,
// and checked for horizontal scroll at 320 px.
//
// Run from anywhere: `node tests/browser/run.mjs` (after `cargo build` and `npm ci` here).
// Prints one line per check and ends with `N passed, M failed`; exits 1 on any failure.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';

import {
  AXE_PATH,
  BINARY,
  BRAND_COLOR,
  CHROMIUM,
  DESKTOP,
  NARROW,
  PHONE,
  ROOT,
  SHOTS,
  allViolations,
  api,
  apiKey,
  apiOk,
  audit,
  base,
  check,
  cleaned,
  cleanup,
  cleanups,
  contrastOf,
  failed,
  failures,
  finish,
  freePort,
  h1,
  inbox,
  inspect,
  killServer,
  must,
  passed,
  runDir,
  server,
  serverEnv,
  shoot,
  sleep,
  startServer,
  startSmtpSink,
  submitBy,
  waitFor,
} from './lib.mjs';

/** The score scale's geometry at a viewport width: each target's box, the end labels' boxes. */
async function scaleAt(page, width) {
  const original = page.viewportSize();
  await page.setViewportSize({ width, height: PHONE.height });
  try {
    return await page.evaluate(() => ({
      targets: [...document.querySelectorAll('.options label')].map((l) => l.getBoundingClientRect().toJSON()),
      low: document.querySelector('.ends span:first-child').getBoundingClientRect().toJSON(),
      high: document.querySelector('.ends span:last-child').getBoundingClientRect().toJSON(),
    }));
  } finally {
    await page.setViewportSize(original);
  }
}

/** Both scales: targets ≥ 24 px wide from 320 px up, one row, end labels at the true ends. */
async function checkScale(page, count) {
  for (const width of [320, 375, 414, 1280]) {
    const g = await scaleAt(page, width);
    assert.equal(g.targets.length, count);
    const narrowest = Math.min(...g.targets.map((t) => t.width));
    assert.ok(narrowest >= 24, `at ${width}px a score target is ${narrowest.toFixed(1)}px wide (< 24)`);
    const tops = new Set(g.targets.map((t) => Math.round(t.top)));
    assert.equal(tops.size, 1, `at ${width}px the scale wraps into ${tops.size} rows`);
    const first = g.targets[0];
    const last = g.targets[count - 1];
    assert.ok(Math.abs(g.low.left - first.left) <= 2, `at ${width}px the low label starts at ${g.low.left}, the scale at ${first.left}`);
    assert.ok(Math.abs(g.high.right - last.right) <= 2, `at ${width}px the high label ends at ${g.high.right}, the scale at ${last.right}`);
    assert.ok(g.low.top >= first.bottom, `at ${width}px the end labels are not under the scale`);
  }
}

// ---------------------------------------------------------------- the run


async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = runDir('closeloop-browser-');

  const smtpPort = await startSmtpSink();
  await must('server starts and /readyz answers 200', () => startServer(tmp, smtpPort));

  // ---- survey, invitation, email
  let survey;
  let invitation;
  await must('create an NPS survey with a public link', async () => {
    survey = await apiOk('POST', '/api/v1/surveys', {
      kind: 'nps',
      name: 'Browser test NPS',
      brand: 'Acme',
      brand_color: BRAND_COLOR,
      public_link: true,
    });
    assert.ok(survey.id && survey.public_url, JSON.stringify(survey));
  });
  await must('invite one contact by email', async () => {
    const batch = await apiOk('POST', `/api/v1/surveys/${survey.id}/invitations`, {
      channel: 'email',
      contacts: [{ email: 'ada@example.com', name: 'Ada' }],
    });
    invitation = batch.items[0];
    assert.equal(invitation.status, 'scheduled', JSON.stringify(invitation));
  });

  let mail;
  let scoreLink;
  let unsubscribeLink;
  await must('the survey email arrives at the SMTP sink', async () => {
    const got = await waitFor('the survey email', () => inbox.find((m) => m.to.includes('ada@example.com')), 20_000);
    mail = got.mail;
    assert.ok(mail.html, 'the email has an HTML part');
    assert.ok(mail.text, 'the email has a text part');
  });
  await must('the HTML part links score 3 to the survey page', () => {
    const m = mail.html.match(/href="([^"]*\/s\/[A-Za-z0-9_-]{43}\?score=3)"/);
    assert.ok(m, 'no ?score=3 link in the HTML part');
    scoreLink = m[1].replace(/&amp;/g, '&');
    assert.ok(scoreLink.startsWith(`${base}/s/`), `link is not on PUBLIC_URL: ${scoreLink}`);
  });
  await must('List-Unsubscribe names an https/http unsubscribe page and a mailto', () => {
    const line = mail.headerLines.find((h) => h.key === 'list-unsubscribe');
    assert.ok(line, 'no List-Unsubscribe header');
    const m = line.line.match(/<(https?:\/\/[^>]+\/u\/[A-Za-z0-9_-]{43})>/);
    assert.ok(m, `no unsubscribe URL in ${line.line}`);
    assert.match(line.line, /<mailto:[^>]+>/);
    unsubscribeLink = m[1];
  });
  const token = scoreLink.match(/\/s\/([A-Za-z0-9_-]{43})/)[1];
  const surveyUrl = `${base}/s/${token}`;

  // ---- the browser
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright starts Chromium with a fresh temporary --user-data-dir of its own and
    // removes it on close.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  cleanups.push(() => browser.close());
  const phone = await browser.newContext({
    viewport: PHONE,
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 1,
    bypassCSP: true, // only so that axe-core can be injected; the pages run no script
    locale: 'en-US',
  });
  const page = await phone.newPage();
  page.setDefaultTimeout(15_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // ---- email score link → form with 3 checked
  const comment1 = 'The setup took too long.';
  await must('the email score link opens the form with 3 checked', async () => {
    const r = await page.goto(scoreLink);
    assert.equal(r.status(), 200);
    assert.equal(await page.locator('#score-3').isChecked(), true, 'score 3 is not checked');
    const checked = await page.locator('input[name=score]:checked').count();
    assert.equal(checked, 1);
    assert.equal(await page.locator('input[name=score]').count(), 11, 'NPS has 11 options');
    assert.match(await h1(page), /Acme/);
    // each radio has a label
    for (let i = 0; i <= 10; i++) {
      assert.equal(await page.locator(`label[for="score-${i}"]`).innerText(), String(i));
    }
  });
  await inspect(page, 'survey');
  await check('the page says "Your score: 3, not sent yet" near the top, Send right under the scale', async () => {
    const note = page.locator('.pending');
    assert.equal(await note.isVisible(), true);
    assert.equal((await note.innerText()).replace(/\s+/g, ' ').trim(), 'Your score: 3, not sent yet');
    const noteBox = await note.boundingBox();
    const scale = await page.locator('.options').boundingBox();
    const ends = await page.locator('.ends').boundingBox();
    const send = await page.getByRole('button', { name: 'Send', exact: true }).boundingBox();
    const comment = await page.locator('#comment').boundingBox();
    assert.ok(noteBox.y < scale.y, 'the note is above the scale');
    assert.ok(send.y > ends.y && send.y < comment.y, 'Send sits between the scale and the comment');
    assert.ok(send.y - (ends.y + ends.height) < 40, `Send is ${send.y - (ends.y + ends.height)}px under the scale`);
    assert.ok(noteBox.y + noteBox.height < PHONE.height && send.y + send.height < PHONE.height, 'the note and Send are on the first screen');
  });
  await check('choosing another score hides the "not sent yet" note (CSS :has)', async () => {
    await page.locator('label[for="score-7"]').tap();
    assert.equal(await page.locator('.pending').isVisible(), false);
    await page.locator('label[for="score-3"]').tap();
    assert.equal(await page.locator('.pending').isVisible(), true);
  });
  await check('the NPS scale: 11 targets ≥ 24 px wide from 320 px, one row, end labels at the true ends', () =>
    checkScale(page, 11),
  );
  await check('the scale is a radio group named by the question', async () => {
    const group = page.getByRole('radiogroup', { name: /How likely are you to recommend Acme/ });
    assert.equal(await group.count(), 1);
    assert.equal(await group.getByRole('radio').count(), 11);
    assert.equal(await page.getByRole('radio', { name: '3', exact: true }).isChecked(), true);
  });
  await check('forced colors (high contrast): the chosen score stays visible', async () => {
    await page.emulateMedia({ forcedColors: 'active' });
    try {
      const look = (sel) =>
        page.locator(sel).evaluate((el) => {
          const cs = getComputedStyle(el);
          return `${cs.backgroundColor} ${cs.color}`;
        });
      const chosen = await look('label[for="score-3"]');
      const other = await look('label[for="score-4"]');
      assert.notEqual(chosen, other, `chosen and other scores look the same: ${chosen}`);
      const edge = await page
        .getByRole('button', { name: 'Send', exact: true })
        .evaluate((el) => `${getComputedStyle(el).borderTopWidth} ${getComputedStyle(el).borderTopColor}`);
      assert.ok(!/^0px|rgba\(0, 0, 0, 0\)/.test(edge), `the Send button has no visible edge: ${edge}`);
      await page.screenshot({ path: path.join(SHOTS, 'survey-forced-colors-375.png'), fullPage: true });
    } finally {
      await page.emulateMedia({ forcedColors: 'none' });
    }
  });

  await must('type a comment and submit: the thank-you page shows score 3', async () => {
    await page.locator('#comment').fill(comment1);
    const r = await submitBy(page, () => page.getByRole('button', { name: 'Send', exact: true }).click());
    assert.equal(r.status(), 303, 'POST answers 303');
    assert.equal(page.url(), `${surveyUrl}/thanks`);
    assert.match(await h1(page), /Thank you/);
    assert.equal(await page.locator('.score-line strong').innerText(), '3');
    assert.match(await page.getByRole('status').innerText(), /Your comment was saved\./);
  });
  await inspect(page, 'thanks');

  await check('the API shows one response: score 3 with the comment', async () => {
    const list = await apiOk('GET', `/api/v1/responses?survey_id=${survey.id}`);
    assert.equal(list.items.length, 1);
    assert.equal(list.items[0].score, 3);
    assert.equal(list.items[0].comment, comment1);
  });

  // ---- change the answer: tap 9
  await must('"Change your answer" leads back to the form with 3 and the comment', async () => {
    await Promise.all([page.waitForURL(surveyUrl), page.getByRole('link', { name: 'Change your answer' }).click()]);
    assert.equal(await page.locator('#score-3').isChecked(), true);
    assert.equal(await page.locator('#comment').inputValue(), comment1);
    assert.match(await page.locator('.previous').innerText(), /^You answered 3 on .+ UTC\. You can change your answer until .+ UTC\.$/);
  });
  await inspect(page, 'survey-change');
  await must('tap the label of 9 and submit', async () => {
    await page.locator('label[for="score-9"]').tap();
    assert.equal(await page.locator('#score-9').isChecked(), true, 'tapping the label checks 9');
    assert.equal(await page.locator('#score-3').isChecked(), false);
    const r = await submitBy(page, () => page.getByRole('button', { name: 'Send', exact: true }).tap());
    assert.equal(r.status(), 303);
    assert.equal(await page.locator('.score-line strong').innerText(), '9');
  });
  await check('the API shows exactly one response, now 9, comment kept', async () => {
    const list = await apiOk('GET', `/api/v1/responses?survey_id=${survey.id}`);
    assert.equal(list.items.length, 1, `responses: ${JSON.stringify(list.items)}`);
    assert.equal(list.items[0].score, 9);
    assert.equal(list.items[0].comment, comment1);
    assert.equal(list.items[0].invitation_id, invitation.invitation_id);
  });

  // ---- change the comment on the thank-you page
  const comment2 = 'Setup was slow, but support fixed it the same day.';
  await check('change the comment on the thank-you page', async () => {
    assert.equal(await page.locator('#comment').inputValue(), comment1);
    await page.locator('#comment').fill(comment2);
    const r = await submitBy(page, () => page.getByRole('button', { name: 'Save comment' }).click());
    assert.equal(r.status(), 303);
    assert.equal(page.url(), `${surveyUrl}/thanks`);
    assert.equal(await page.locator('.score-line strong').innerText(), '9');
    assert.equal(await page.locator('#comment').inputValue(), comment2);
    const list = await apiOk('GET', `/api/v1/responses?survey_id=${survey.id}`);
    assert.equal(list.items.length, 1);
    assert.equal(list.items[0].score, 9);
    assert.equal(list.items[0].comment, comment2);
  });

  await check('the invitation is marked responded', async () => {
    const inv = await apiOk('GET', `/api/v1/invitations/${invitation.invitation_id}`);
    assert.equal(inv.status, 'responded');
  });

  // ---- unsubscribe from the List-Unsubscribe link
  await must('the List-Unsubscribe link shows an Unsubscribe button', async () => {
    const r = await page.goto(unsubscribeLink);
    assert.equal(r.status(), 200);
    assert.match(await h1(page), /Unsubscribe/);
    assert.equal(await page.getByRole('button', { name: 'Unsubscribe' }).count(), 1);
    assert.match(await page.locator('.address').innerText(), /a•••@example\.com/);
  });
  await inspect(page, 'unsubscribe');
  await check('opening the unsubscribe page alone unsubscribes nobody', async () => {
    const c = await apiOk('GET', `/api/v1/contacts/${invitation.contact_id}`);
    assert.equal(c.unsubscribed_at, null);
  });
  await must('click Unsubscribe: the confirmation shows', async () => {
    const r = await submitBy(page, () => page.getByRole('button', { name: 'Unsubscribe' }).click());
    assert.ok(r.status() === 200 || r.status() === 303, `POST answers ${r.status()}`);
    assert.match(await h1(page), /You are unsubscribed/);
  });
  await inspect(page, 'unsubscribed');
  await check("the contact's unsubscribed_at is set", async () => {
    const c = await apiOk('GET', `/api/v1/contacts/${invitation.contact_id}`);
    assert.ok(c.unsubscribed_at, JSON.stringify(c));
  });
  await check('the confirmation names the address (masked) and offers to re-subscribe; it works', async () => {
    assert.match(await page.locator('.address').innerText(), /a•••@example\.com/);
    const r = await submitBy(page, () => page.getByRole('button', { name: 'Re-subscribe' }).click());
    assert.equal(r.status(), 200);
    assert.match(await h1(page), /You are subscribed again/);
    await shoot(page, 'resubscribed');
    const c = await apiOk('GET', `/api/v1/contacts/${invitation.contact_id}`);
    assert.equal(c.unsubscribed_at, null);
  });

  // ---- the public link: validation errors, then an anonymous answer
  const publicUrl = survey.public_url;
  await must('the public link opens the form with nothing chosen', async () => {
    assert.ok(publicUrl.startsWith(`${base}/l/`), publicUrl);
    const r = await page.goto(publicUrl);
    assert.equal(r.status(), 200);
    assert.equal(await page.locator('input[name=score]:checked').count(), 0);
  });
  await inspect(page, 'public');
  await must('submitting without a score answers 422 listing the error', async () => {
    await page.locator('#comment').fill('I forgot to pick a number');
    const r = await submitBy(page, () => page.getByRole('button', { name: 'Send', exact: true }).click());
    assert.equal(r.status(), 422);
    const alert = page.getByRole('alert');
    assert.match(await alert.innerText(), /Please choose a score/);
    const group = page.getByRole('radiogroup');
    assert.equal(await group.getAttribute('aria-invalid'), 'true');
    assert.equal(await group.getAttribute('aria-describedby'), 'errors');
    assert.equal(await page.locator('#comment').inputValue(), 'I forgot to pick a number', 'the typed comment is kept');
  });
  await inspect(page, 'survey-errors');
  await must('answer the public link: its thank-you page shows the score', async () => {
    await page.locator('label[for="score-10"]').tap();
    await page.locator('#comment').fill('Anonymous praise');
    const r = await submitBy(page, () => page.getByRole('button', { name: 'Send', exact: true }).click());
    assert.equal(r.status(), 303);
    assert.match(page.url(), /\/l\/[^/]+\/r\/[A-Za-z0-9_-]{43}$/);
    assert.match(await h1(page), /Thank you/);
    assert.equal(await page.locator('.score-line strong').innerText(), '10');
  });
  await inspect(page, 'public-thanks');
  await check('the API shows the anonymous response', async () => {
    const list = await apiOk('GET', `/api/v1/responses?survey_id=${survey.id}`);
    const anon = list.items.filter((r) => r.channel === 'public');
    assert.equal(anon.length, 1, JSON.stringify(list.items));
    assert.equal(anon[0].score, 10);
    assert.equal(anon[0].comment, 'Anonymous praise');
    assert.equal(anon[0].invitation_id, null);
    assert.equal(anon[0].contact_id, null);
  });

  await check('keyboard only: Tab reaches the scale, arrows choose, Enter sends', async () => {
    await page.goto(publicUrl);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'score-0', 'the first Tab lands on the scale');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'score-2');
    assert.equal(await page.locator('#score-2').isChecked(), true, 'arrows choose a score');
    const ring = await page
      .locator('label[for="score-2"]')
      .evaluate((el) => `${getComputedStyle(el).outlineStyle} ${getComputedStyle(el).outlineWidth}`);
    assert.equal(ring, 'solid 3px', 'the focused score shows a focus ring');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'comment');
    await page.keyboard.type('Typed with the keyboard');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'BUTTON', 'the honeypot is skipped');
    const r = await submitBy(page, () => page.keyboard.press('Enter'));
    assert.equal(r.status(), 303);
    assert.equal(await page.locator('.score-line strong').innerText(), '2');
    const list = await apiOk('GET', `/api/v1/responses?survey_id=${survey.id}`);
    const found = list.items.filter((x) => x.comment === 'Typed with the keyboard');
    assert.equal(found.length, 1);
    assert.equal(found[0].score, 2);
  });

  // ---- without JavaScript
  const noJs = await browser.newContext({
    viewport: PHONE,
    isMobile: true,
    hasTouch: true,
    javaScriptEnabled: false,
    bypassCSP: true,
    locale: 'en-US',
  });
  cleanups.push(() => noJs.close());
  const plain = await noJs.newPage();
  plain.setDefaultTimeout(15_000);
  await check('without JavaScript: the public link form records an answer', async () => {
    const r = await plain.goto(publicUrl);
    assert.equal(r.status(), 200);
    await plain.locator('label[for="score-6"]').tap();
    assert.equal(await plain.locator('#score-6').isChecked(), true);
    await plain.locator('#comment').fill('No script here');
    const post = await submitBy(plain, () => plain.getByRole('button', { name: 'Send', exact: true }).click());
    assert.equal(post.status(), 303);
    assert.match(await h1(plain), /Thank you/);
    assert.equal(await plain.locator('.score-line strong').innerText(), '6');
    const list = await apiOk('GET', `/api/v1/responses?survey_id=${survey.id}`);
    const found = list.items.filter((x) => x.channel === 'public' && x.comment === 'No script here');
    assert.equal(found.length, 1);
    assert.equal(found[0].score, 6);
  });
  await check('without JavaScript: the thank-you comment form saves', async () => {
    await plain.locator('#comment').fill('No script here, edited');
    const post = await submitBy(plain, () => plain.getByRole('button', { name: 'Save comment' }).click());
    assert.equal(post.status(), 303);
    const list = await apiOk('GET', `/api/v1/responses?survey_id=${survey.id}`);
    const found = list.items.filter((x) => x.channel === 'public' && x.score === 6);
    assert.equal(found.length, 1, JSON.stringify(list.items));
    assert.equal(found[0].comment, 'No script here, edited');
  });

  // ---- a CSAT survey in a light brand colour (#ffd400: 1.43:1 on white)
  await must('a CSAT survey with a yellow brand opens from its link with 2 preselected', async () => {
    const s3 = await apiOk('POST', '/api/v1/surveys', {
      kind: 'csat',
      name: 'Yellow CSAT',
      brand: 'Sunny',
      brand_color: '#ffd400',
    });
    const batch = await apiOk('POST', `/api/v1/surveys/${s3.id}/invitations`, {
      channel: 'link',
      contacts: [{ email: 'sunny@example.com' }],
    });
    const r = await page.goto(`${batch.items[0].url}?score=2`);
    assert.equal(r.status(), 200);
    assert.equal(await page.locator('#score-2').isChecked(), true);
    assert.equal(await page.locator('input[name=score]').count(), 5);
  });
  await inspect(page, 'survey-csat-yellow');
  await check('the CSAT scale: 5 targets ≥ 24 px wide from 320 px, one row, end labels at the true ends', () =>
    checkScale(page, 5),
  );
  await check('the yellow brand meets white only in a dark variant (≥ 4.5:1)', async () => {
    const look = await page.evaluate(() => {
      const cs = (sel, prop) => getComputedStyle(document.querySelector(sel))[prop];
      return {
        header: [cs('.brand', 'color'), cs('.brand', 'backgroundColor')],
        chosen: [cs('label[for="score-2"]', 'color'), cs('label[for="score-2"]', 'backgroundColor')],
        chosenEdge: cs('label[for="score-2"]', 'borderTopColor'),
        note: cs('.pending', 'borderLeftColor'),
        send: [cs('.send-now button', 'color'), cs('.send-now button', 'backgroundColor')],
        secondary: [cs('button.secondary', 'color'), cs('button.secondary', 'backgroundColor')],
      };
    });
    const white = 'rgb(255, 255, 255)';
    assert.ok(contrastOf(...look.header) >= 4.5, `header ${look.header}`);
    assert.ok(contrastOf(...look.chosen) >= 4.5, `chosen score ${look.chosen}`);
    assert.ok(contrastOf(...look.send) >= 4.5, `Send ${look.send}`);
    assert.ok(contrastOf(...look.secondary) >= 4.5, `secondary button ${look.secondary}`);
    assert.ok(contrastOf(look.chosenEdge, white) >= 3, `chosen score edge ${look.chosenEdge} on white`);
    assert.ok(contrastOf(look.note, white) >= 3, `note edge ${look.note} on white`);
  });

  // ---- after the edit window: the recorded answer, no form
  await must('after the edit window the link shows the recorded answer and its date, no form', async () => {
    const s4 = await apiOk('POST', '/api/v1/surveys', {
      kind: 'nps',
      name: 'No changes',
      brand: 'Acme',
      brand_color: BRAND_COLOR,
      edit_window_hours: 0,
    });
    const batch = await apiOk('POST', `/api/v1/surveys/${s4.id}/invitations`, {
      channel: 'link',
      contacts: [{ email: 'final@example.com' }],
    });
    const url = batch.items[0].url;
    await page.goto(`${url}?score=8`);
    await page.locator('#comment').fill('Quick and friendly.');
    const r = await submitBy(page, () => page.getByRole('button', { name: 'Send', exact: true }).click());
    assert.equal(r.status(), 303);
    await sleep(50);
    const again = await page.goto(`${url}?score=2`);
    assert.equal(again.status(), 200);
    assert.match(await h1(page), /Your answer/);
    assert.match(await page.locator('.score-line').innerText(), /^You answered 8 on .+ UTC\.$/);
    assert.match(await page.locator('.comment').innerText(), /Quick and friendly\./);
    assert.match(await page.getByRole('status').innerText(), /can no longer be changed/);
    assert.equal(await page.locator('form').count(), 0);
  });
  await inspect(page, 'answered');

  // ---- 404 and 410
  await must('an unknown survey token answers 404 with a friendly heading', async () => {
    const r = await page.goto(`${base}/s/${'A'.repeat(43)}`);
    assert.equal(r.status(), 404);
    assert.match(await h1(page), /not found/i);
  });
  await inspect(page, 'not-found');

  let goneUrl;
  await must('archive a second survey after inviting by link', async () => {
    const s2 = await apiOk('POST', '/api/v1/surveys', {
      kind: 'nps',
      name: 'Archived survey',
      brand: 'Acme',
      brand_color: BRAND_COLOR,
    });
    const batch = await apiOk('POST', `/api/v1/surveys/${s2.id}/invitations`, {
      channel: 'link',
      contacts: [{ email: 'grace@example.com', name: 'Grace' }],
    });
    goneUrl = batch.items[0].url;
    assert.ok(goneUrl, JSON.stringify(batch));
    const before = await page.goto(goneUrl);
    assert.equal(before.status(), 200, 'the link works before archiving');
    await apiOk('POST', `/api/v1/surveys/${s2.id}/archive`);
  });
  await must('the archived survey link answers 410 with a friendly heading', async () => {
    const r = await page.goto(goneUrl);
    assert.equal(r.status(), 410);
    assert.match(await h1(page), /closed/i);
  });
  await inspect(page, 'gone');

  // ---- the email itself, as a phone and a desktop mail client would render it
  await check('the survey email HTML renders (screenshots email-375/1280)', async () => {
    const mailPage = await phone.newPage();
    try {
      await mailPage.setContent(mail.html, { waitUntil: 'load' });
      // The email template is not a page of this service: its axe findings and its width at
      // 320 px are reported, not enforced.
      await audit(mailPage, 'email', { reportOnly: true });
      await shoot(mailPage, 'email', { narrow: 'report' });
    } finally {
      await mailPage.close();
    }
  });

  await check('no script errors on any page', () => assert.deepEqual(errors, []));
}

let crashed = null;
try {
  await main();
} catch (e) {
  crashed = e;
}
await finish(crashed);

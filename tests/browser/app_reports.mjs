#!/usr/bin/env node
// Browser tests of the dashboards: /app/reports (every survey of a kind) and /app/surveys/{id}
// (one survey).
//
// Starts a real `closeloop` (SQLite, or the database in CLOSELOOP_TEST_DATABASE_URL), signs an
// admin in through a `closeloop user create` link, records answers through the survey pages,
// then checks in Chromium that the dashboard's headline (NPS, its 95 % interval, the counts and
// the response rate) equals GET /api/v1/surveys/{id}/report (and /api/v1/reports) for the range
// the page shows, that the trend SVG has one bucket per series point and one point per bucket
// with answers, that the segment comparison and the CSV download work, and that a reader can
// view. Every page is audited with axe-core and screenshotted at 375 and 1280 px into
// target/screenshots/app-reports-*.png.
//
// Run: `cargo build && node tests/browser/app_reports.mjs` (after `npm ci` here).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

import { chromium } from 'playwright-core';

import {
  BINARY,
  CHROMIUM,
  SHOTS,
  apiOk,
  base,
  check,
  finish,
  h1,
  inspect,
  must,
  runDir,
  serverEnv,
  startServer,
  startSmtpSink,
  submitBy,
} from './lib.mjs';

/** A one-time sign-in link from the CLI for a new member. */
function cliLink(email, name, role) {
  const cli = spawnSync(BINARY, ['user', 'create', '--email', email, '--name', name, '--role', role], {
    env: serverEnv,
    encoding: 'utf8',
  });
  assert.equal(cli.status, 0, cli.stderr);
  return cli.stdout.trim().split('\n').pop().trim();
}

async function signIn(page, link) {
  await page.goto(link);
  await submitBy(page, () => page.getByRole('button', { name: 'Sign in' }).click());
}

/** Answers `survey` once per entry of `answers` ({score, comment, props}) through the page. */
async function answer(survey, answers) {
  const batch = await apiOk('POST', `/api/v1/surveys/${survey.id}/invitations`, {
    channel: 'link',
    contacts: answers.map((a, i) => ({
      email: `${survey.kind}-${i}-${Date.now()}@shop.test`,
      name: `Customer ${i}`,
      properties: a.props,
    })),
  });
  for (const [i, item] of batch.items.entries()) {
    const token = item.url.split('/').pop();
    const res = await fetch(`${base}/s/${token}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ score: String(answers[i].score), comment: answers[i].comment }),
      redirect: 'manual',
    });
    assert.equal(res.status, 303, `answering ${item.email}`);
  }
}

/** The key numbers the page shows, from its data attributes. */
async function headline(page) {
  return page.evaluate(() => {
    const d = document.querySelector('#dashboard').dataset;
    const num = (sel, attr = 'value') => {
      const v = document.querySelector(sel).dataset[attr];
      return v === '' ? null : Number(v);
    };
    return {
      from: d.from,
      to: d.to,
      interval: d.interval,
      score: num('#headline-score'),
      lo: num('#headline-ci', 'lo'),
      hi: num('#headline-ci', 'hi'),
      responses: num('#headline-responses'),
      rate: num('#headline-rate'),
      buckets: document.querySelectorAll('svg.trend g.bucket').length,
      points: document.querySelectorAll('svg.trend circle.pt').length,
    };
  });
}

function sameAsApi(shown, report, measure) {
  assert.equal(shown.score, report[measure], `${measure}: page ${shown.score}, API ${report[measure]}`);
  const ci = report[`${measure}_ci95`];
  assert.deepEqual([shown.lo, shown.hi], ci ?? [null, null]);
  assert.equal(shown.responses, report.responses);
  assert.equal(shown.rate, report.response_rate);
  assert.equal(shown.buckets, report.series.length, 'one bucket per series point');
  assert.equal(
    shown.points,
    report.series.filter((p) => p.responses > 0).length,
    'one point per bucket with answers (empty buckets are gaps)',
  );
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = runDir('closeloop-reports-');
  const smtpPort = await startSmtpSink();
  await must('server starts and /readyz answers 200', () => startServer(tmp, smtpPort));

  const plans = ['free', 'pro', 'team', 'enterprise'];
  const words = ['Setup was quick', 'The export is slow', 'Support answered fast', 'Too expensive for us', 'Love the reports'];
  const nps = await apiOk('POST', '/api/v1/surveys', { kind: 'nps', name: 'Onboarding NPS' });
  const csat = await apiOk('POST', '/api/v1/surveys', { kind: 'csat', name: 'Support CSAT' });
  await must('answers are recorded through the survey pages', async () => {
    const scores = [10, 9, 9, 8, 7, 6, 3, 10, 9, 0, 5, 10, 8, 9, 2, 10, 9, 7, 10, 4];
    await answer(
      nps,
      scores.map((score, i) => ({ score, comment: `${words[i % words.length]} (${i})`, props: { plan: plans[i % 4] } })),
    );
    await answer(
      csat,
      [5, 4, 2, 5, 3].map((score, i) => ({ score, comment: `${words[(i + 2) % words.length]}`, props: { plan: plans[i % 4] } })),
    );
  });

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const errors = [];
  const newPage = async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await context.newPage();
    p.on('pageerror', (e) => errors.push(`${p.url()}: ${e.message}`));
    p.on('console', (m) => {
      if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) errors.push(`${p.url()}: ${m.text()}`);
    });
    return p;
  };
  try {
    const lea = await newPage();
    await must('the lead signs in through a `closeloop user create` link', async () => {
      await signIn(lea, cliLink('lea@acme.test', 'Lea Lead', 'admin'));
      await lea.goto(`${base}/app/reports`);
      assert.equal(await h1(lea), 'NPS across surveys');
      assert.equal(await lea.locator('nav[aria-label="Workspace"] a[aria-current="page"]').innerText(), 'Reports');
    });

    await check("a survey's dashboard shows what GET /api/v1/surveys/{id}/report returns", async () => {
      await lea.goto(`${base}/app/surveys/${nps.id}?period=30d`);
      assert.equal(await h1(lea), 'Onboarding NPS');
      const shown = await headline(lea);
      const report = await apiOk(
        'GET',
        `/api/v1/surveys/${nps.id}/report?from=${shown.from}&to=${shown.to}&interval=${shown.interval}`,
      );
      assert.equal(report.responses, 20);
      sameAsApi(shown, report, 'nps');
      assert.equal(shown.buckets, 30, 'the last 30 days, one bucket a day');
    });
    await check('the segment comparison lists every value with its n, small n flagged', async () => {
      await lea.goto(`${base}/app/surveys/${nps.id}`);
      await lea.getByLabel('Compare by property').fill('plan');
      await Promise.all([lea.waitForURL(/segment=plan/), lea.getByRole('button', { name: 'Apply' }).click()]);
      const rows = await lea.locator('#chart-segments g.seg-row').count();
      assert.equal(rows, 4);
      assert.equal(await lea.locator('#chart-segments g.seg-row.small').count(), 4, 'n = 5 each: all small');
      assert.match(await lea.locator('#chart-segments table').textContent(), /small sample/);
    });
    await inspect(lea, 'app-reports-survey');

    await check('the comments feed filters by category and text, each linking to its task', async () => {
      await lea.goto(`${base}/app/surveys/${nps.id}`);
      await lea.getByLabel('Category', { exact: true }).selectOption('detractor');
      await lea.getByLabel('Text').fill('slow');
      await Promise.all([lea.waitForURL(/category=detractor/), lea.getByRole('button', { name: 'Filter' }).click()]);
      const items = lea.locator('#feed li.feed-item');
      assert.ok((await items.count()) >= 1);
      for (const text of await items.allInnerTexts()) assert.match(text, /export is slow/i);
      const href = await items.first().getByRole('link', { name: 'Open the task' }).getAttribute('href');
      assert.match(href, /^\/app\/followups\/fup_/);
    });
    await check('"Download CSV" downloads the export with the current filters', async () => {
      await lea.goto(`${base}/app/surveys/${nps.id}?category=promoter`);
      const href = await lea.locator('#csv-link').getAttribute('href');
      const res = await lea.request.get(base + href);
      assert.equal(res.status(), 200);
      assert.match(res.headers()['content-type'], /text\/csv/);
      const lines = (await res.text()).trim().split('\n');
      assert.equal(lines.length - 1, 10, 'ten promoters');
      for (const l of lines.slice(1)) assert.match(l, /,promoter,/);
    });

    await check('/app/reports equals GET /api/v1/reports for NPS and for CSAT', async () => {
      await lea.goto(`${base}/app/reports`);
      let shown = await headline(lea);
      let report = await apiOk('GET', `/api/v1/reports?kind=nps&from=${shown.from}&to=${shown.to}&interval=${shown.interval}`);
      sameAsApi(shown, report, 'nps');
      await Promise.all([lea.waitForURL(/kind=csat/), lea.getByRole('link', { name: 'CSAT', exact: true }).click()]);
      assert.equal(await h1(lea), 'CSAT across surveys');
      shown = await headline(lea);
      report = await apiOk('GET', `/api/v1/reports?kind=csat&from=${shown.from}&to=${shown.to}&interval=${shown.interval}`);
      sameAsApi(shown, report, 'csat');
    });
    await lea.goto(`${base}/app/reports?segment=plan`);
    await inspect(lea, 'app-reports');

    await check('a bad period is a friendly 422 page', async () => {
      const res = await lea.goto(`${base}/app/reports?period=xyz`);
      assert.equal(res.status(), 422);
      assert.equal(await h1(lea), 'Check the address');
    });

    const rey = await newPage();
    await check('a reader can view the dashboards', async () => {
      await signIn(rey, cliLink('rey@acme.test', 'Rey Reader', 'reader'));
      const res = await rey.goto(`${base}/app/surveys/${nps.id}`);
      assert.equal(res.status(), 200);
      assert.equal(await h1(rey), 'Onboarding NPS');
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

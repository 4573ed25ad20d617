// The API token in the dashboard: a coordinator started with --api-token-file
// answers the page's calls 401, and the page asks for the token once; a wrong
// one is refused with a message and asked for again; the right one logs in
// (the cluster appears, a request sent from the page commits), and a reload
// within the session stays logged in.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Coordinator, launchBrowser, openDashboard, screenshot, teardown, waitFor } = require('./lib/harness');

const TOKEN = `dash-${crypto.randomBytes(12).toString('hex')}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'replicacao-browser-auth-'));
const tokenFile = path.join(dir, 'token');
fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });

const coord = new Coordinator('auth', { extraArgs: ['--api-token-file', tokenFile], token: TOKEN });
let browser;
let page;
process.on('exit', () => { coord.killNow(); fs.rmSync(dir, { recursive: true, force: true }); });

const circles = async () => (await page.$$('#cluster-svg g.node')).length;

describe('API token', { timeout: 120000 }, () => {
  before(async () => {
    await coord.start();
    browser = await launchBrowser();
    page = await openDashboard(browser, `${coord.url}/`);
  });

  after(() => teardown(browser, coord));

  it('asks for the token, refuses a wrong one, logs in with the right one and keeps it across a reload', async () => {
    await waitFor('the token form', () => page.isVisible('#auth'));
    assert.equal(await circles(), 0, 'nothing of the cluster shows before the login');
    await waitFor('the connection state to say why', async () =>
      /API token/.test(await page.textContent('#conn-text')), { timeoutMs: 5000 });
    assert.equal(await page.isVisible('#banner'), false, 'no "connection lost" banner behind the form');
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'auth-token');
    await screenshot(page, 'auth-prompt');

    await page.fill('#auth-token', 'not-the-token');
    await page.click('#auth-submit');
    await waitFor('the refusal', () => page.isVisible('#auth-error'));
    assert.match(await page.textContent('#auth-error'), /refused/i);
    assert.equal(await page.isVisible('#auth'), true, 'the form stays');
    await screenshot(page, 'auth-wrong-token');

    await page.fill('#auth-token', TOKEN);
    await page.press('#auth-token', 'Enter');
    await waitFor('the form to go', async () => !(await page.isVisible('#auth')));
    await waitFor('live', async () => (await page.getAttribute('#conn', 'data-state')) === 'live', { timeoutMs: 15000 });
    await waitFor('3 circles', async () => (await circles()) === 3);
    await page.click('#btn-send');
    await waitFor('the request to commit', async () =>
      (await page.getAttribute('#requests li:first-child', 'data-state')) === 'committed', { timeoutMs: 15000 });
    await screenshot(page, 'auth-logged-in');

    // A reload within the session: no form, straight to the cluster.
    await page.reload();
    await waitFor('live after the reload', async () => (await page.getAttribute('#conn', 'data-state')) === 'live', { timeoutMs: 15000 });
    await waitFor('3 circles after the reload', async () => (await circles()) === 3);
    assert.equal(await page.isVisible('#auth'), false, 'no form after a reload');
    const shown = await page.evaluate(() => sessionStorage.getItem('replicacao.api-token'));
    assert.equal(shown, TOKEN);

    // The refused calls and WebSocket attempts before the login are the only errors.
    const errors = page.errors.filter((e) => !/status of 401|WebSocket/.test(e));
    assert.deepEqual(errors, []);
    assert.deepEqual(page.external, []);
  });
});

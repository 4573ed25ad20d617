// The WebSocket reconnects by itself: when the coordinator goes away the page
// says so ("reconnecting" banner, stale view), and when it is back (restarted on
// the same address and data) the banner goes and the view resyncs from a snapshot.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Coordinator, launchBrowser, openDashboard, screenshot, teardown, waitFor } = require('./lib/harness');

const coord = new Coordinator('reconnect');
let browser;
let page;
process.on('exit', () => coord.killNow());

describe('WebSocket reconnect', { timeout: 180000 }, () => {
  before(async () => {
    await coord.start();
    browser = await launchBrowser();
    page = await openDashboard(browser, `${coord.url}/`);
  });

  after(() => teardown(browser, coord));

  it('shows a reconnecting banner while the coordinator is down and resyncs when it is back', async () => {
    await waitFor('live', async () => (await page.getAttribute('#conn', 'data-state')) === 'live');
    await waitFor('3 circles', async () => (await page.$$('#cluster-svg g.node')).length === 3);
    assert.equal(await page.isVisible('#banner'), false, 'no banner while connected');

    await coord.stop();
    await waitFor('the reconnecting banner', () => page.isVisible('#banner'), { timeoutMs: 10000 });
    assert.match(await page.textContent('#banner-text'), /reconnecting/i);
    assert.equal(await page.getAttribute('#conn', 'data-state'), 'reconnecting');
    assert.match(await page.textContent('#conn-text'), /reconnecting/i);
    assert.match(await page.getAttribute('#cluster-wrap', 'class'), /stale/);
    await waitFor('a "connection lost" timeline entry', () => page.$('#timeline li[data-type="local_lost"]'));
    await screenshot(page, 'reconnect-banner');

    // back on the same address and data directory; the page must find it alone
    await coord.start();
    await waitFor('live again', async () => (await page.getAttribute('#conn', 'data-state')) === 'live', { timeoutMs: 30000 });
    assert.equal(await page.isVisible('#banner'), false, 'the banner is gone');
    await waitFor('a resynced view: 3 circles, one up primary', async () => {
      const ns = await page.$$eval('#cluster-svg g.node', (gs) => gs.map((g) => [g.dataset.status, g.dataset.role]));
      return ns.length === 3 && ns.filter(([s, r]) => s === 'up' && r === 'primary').length === 1;
    }, { timeoutMs: 30000 });
    assert.doesNotMatch(await page.getAttribute('#cluster-wrap', 'class'), /stale/);
    await waitFor('a "reconnected" timeline entry', () => page.$('#timeline li[data-type="local_back"]'));

    // and it is live, not just reloaded: a request still round-trips
    await page.click('#btn-send');
    await waitFor('the request to commit', async () =>
      (await page.getAttribute('#requests li:first-child', 'data-state')) === 'committed', { timeoutMs: 30000 });
    assert.deepEqual(page.errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)), []);
  });
});

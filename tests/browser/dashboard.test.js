// The dashboard against a real coordinator with 3 spawned replicas: topology,
// requests, a fault request's failover, the failed replica's return and catch-up,
// keyboard access, and screenshots at 1280x800 and 400x800.
//
//   node --test tests/browser/
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Coordinator, getJson, launchBrowser, openDashboard, pageErrors, screenshot, waitFor } = require('./lib/harness');

const coord = new Coordinator('dashboard');
let browser;
let page;
process.on('exit', () => coord.killNow());

/* Data attributes the dashboard puts on each replica circle. */
async function nodes() {
  return page.$$eval('#cluster-svg g.node', (gs) => gs.map((g) => ({
    id: g.dataset.id,
    role: g.dataset.role,
    status: g.dataset.status,
    primary: g.dataset.primary === 'true',
    commit: Number(g.dataset.commitIndex),
    fill: getComputedStyle(g.querySelector('.body')).fill,
    glyph: g.querySelector('.glyph').textContent,
    label: g.querySelector('.label-name').textContent,
  })));
}

async function openDetails(id) {
  await page.click(`#cluster-svg g.node[data-id="${id}"] .body`);
  await waitFor(`details panel for ${id}`, () => page.$(`#details[data-replica="${id}"] #details-name`));
}

/* Click a button and wait for the newest request chip to commit; returns its data. */
async function sendAndCommit(buttonSel, timeoutMs = 30000) {
  const newest = () => page.$eval('#requests', (ul) => (ul.firstElementChild ? ul.firstElementChild.dataset.requestId : ''));
  const before = await newest();
  await page.click(buttonSel);
  const id = await waitFor('a new request chip', async () => {
    const now = await newest();
    return now && now !== before ? now : null;
  });
  await waitFor(`request ${id} to commit`, async () => {
    const st = await page.getAttribute(`#requests li[data-request-id="${id}"]`, 'data-state');
    if (st === 'error') throw new Error(`request failed: ${await page.textContent(`#requests li[data-request-id="${id}"]`)}`);
    return st === 'committed';
  }, { timeoutMs });
  return page.$eval(`#requests li[data-request-id="${id}"]`, (li) => ({
    data: li.dataset.data, index: Number(li.dataset.index), epoch: Number(li.dataset.epoch),
    primary: li.dataset.primary, text: li.textContent,
  }));
}

describe('dashboard against a live coordinator', { timeout: 240000 }, () => {
  before(async () => {
    await coord.start();
    browser = await launchBrowser();
    page = await openDashboard(browser, `${coord.url}/`);
  });

  after(async () => {
    try {
      if (page) await screenshot(page, 'dashboard-final').catch(() => {});
      if (browser) await browser.close();
    } finally {
      await coord.stop();
      coord.cleanup();
    }
  });

  it('shows 3 circles and exactly one primary, live', async () => {
    await waitFor('3 circles, one primary', async () => {
      const ns = await nodes();
      return ns.length === 3 && ns.filter((n) => n.role === 'primary' && n.status === 'up').length === 1 &&
        ns.filter((n) => n.primary).length === 1;
    });
    await waitFor('the live indicator', async () => (await page.getAttribute('#conn', 'data-state')) === 'live');
    // Colours fade over 0.35 s when a role changes: take them once settled.
    let ns = await nodes();
    await waitFor('settled colours', async () => {
      const a = await nodes();
      await new Promise((r) => setTimeout(r, 400));
      ns = await nodes();
      return a.every((n, i) => n.fill === ns[i].fill);
    }, { timeoutMs: 5000 });
    const prim = ns.find((n) => n.primary);
    assert.equal(prim.glyph, 'P');
    assert.match(prim.label, /primary/);
    assert.equal(prim.fill, 'rgb(21, 128, 61)', 'the primary is green');
    for (const n of ns.filter((x) => !x.primary)) {
      assert.equal(n.role, 'backup');
      assert.equal(n.glyph, 'B');
      assert.equal(n.fill, 'rgb(29, 78, 216)', 'a backup is blue');
    }
    // the header agrees with the API
    const c = await getJson(`${coord.url}/api/cluster`);
    assert.equal(await page.textContent('#stat-primary'), c.primary);
    // one replication link per backup
    assert.equal(await page.$$eval('#cluster-svg line.link', (ls) => ls.length), 2);
  });

  it('"Send request" commits and the entry appears in a backup\'s synced data', async () => {
    const req = await sendAndCommit('#btn-send');
    assert.match(req.data, /^data-\d+$/);
    assert.ok(req.index > 0);
    const backup = (await nodes()).find((n) => n.status === 'up' && n.role === 'backup' && n.id !== req.primary);
    assert.ok(backup, 'a backup to inspect');
    await openDetails(backup.id);
    await waitFor(`${req.data} in ${backup.id}'s synced data`, () =>
      page.$(`#synced-list li[data-index="${req.index}"][data-data="${req.data}"]`), { timeoutMs: 15000 });
    // ... and in the primary's processed data
    await openDetails(req.primary);
    await waitFor(`${req.data} in ${req.primary}'s processed data`, () =>
      page.$(`#processed-list li[data-index="${req.index}"][data-data="${req.data}"]`), { timeoutMs: 15000 });
    // the timeline saw it commit
    await waitFor('a request_committed event in the timeline', () => page.$('#timeline li[data-type="request_committed"]'));
  });

  it('is keyboard accessible: Tab to a circle, Enter opens its details', async () => {
    await page.click('#details button[aria-label="Close details"]');
    await page.locator('body').focus();
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    let focused = null;
    const path = [];
    for (let i = 0; i < 40 && !focused; i++) {
      await page.keyboard.press('Tab');
      const at = await page.evaluate(() => {
        const a = document.activeElement;
        return { id: a && a.matches('#cluster-svg g.node') ? a.dataset.id : null,
          what: a ? `${a.tagName.toLowerCase()}${a.id ? `#${a.id}` : ''}${a.className && typeof a.className === 'string' ? `.${a.className.split(' ')[0]}` : ''}` : 'none' };
      });
      focused = at.id;
      path.push(at.what);
    }
    assert.ok(focused, `Tab reaches a replica circle (focus went: ${path.join(' → ')})`);
    const label = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
    assert.match(label, new RegExp(`^${focused}, `));
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement.querySelector('.focus-ring')).opacity);
    assert.equal(outline, '1', 'the focused circle shows a focus ring');
    await page.keyboard.press('Enter');
    await waitFor(`details for ${focused} after Enter`, () => page.$(`#details[data-replica="${focused}"]:not([hidden]) #details-name`));
    assert.equal(await page.textContent('#details-name'), focused);
    // Space on the next circle switches the panel
    await page.keyboard.press('Tab');
    const next = await page.evaluate(() => document.activeElement.dataset.id);
    if (next && next !== focused) {
      await page.keyboard.press(' ');
      await waitFor(`details for ${next} after Space`, () => page.$(`#details[data-replica="${next}"]`));
    }
  });

  let fault;
  it('"Send fault request": the old primary turns red, another turns green and processes it', async () => {
    const oldPrimary = (await nodes()).find((n) => n.primary).id;
    // record every status/role the old primary's circle goes through (the failure can be brief)
    await page.evaluate((id) => {
      window.__seen = [];
      const g = document.querySelector(`#cluster-svg g.node[data-id="${id}"]`);
      const note = () => window.__seen.push({
        status: g.dataset.status, role: g.dataset.role, glyph: g.querySelector('.glyph').textContent,
        cls: g.getAttribute('class'),
      });
      new MutationObserver(note).observe(g, { attributes: true, attributeFilter: ['data-status', 'data-role', 'data-incident'] });
    }, oldPrimary);
    const req = await sendAndCommit('#btn-fault', 45000);
    fault = { ...req, oldPrimary };
    assert.notEqual(req.primary, oldPrimary, 'a different replica processed the fault request');
    assert.match(req.text, new RegExp(`${oldPrimary} failed first`));

    const seen = await page.evaluate(() => window.__seen);
    // Shown failed: its status "failed", or (a restart can come before the coordinator's
    // next snapshot says so) the failure event's open incident, red all the same.
    const failedState = seen.find((s) => s.status === 'failed' || /\bincident\b(?!-back)/.test(s.cls.replace(/incident-back/, '')));
    assert.ok(failedState, `the old primary was shown failed (saw ${JSON.stringify(seen)})`);
    assert.equal(failedState.glyph, '✕');
    assert.match(failedState.cls, /status-failed|\bincident\b/);
    // status-failed paints the circle red
    const red = await page.evaluate(() => {
      const g = document.createElementNS('http://www.w3.org/2000/svg', 'g');
      g.setAttribute('class', 'node role-primary status-failed');
      const c = document.createElementNS('http://www.w3.org/2000/svg', 'circle');
      c.setAttribute('class', 'body');
      g.appendChild(c);
      document.querySelector('#cluster-svg').appendChild(g);
      const fill = getComputedStyle(c).fill;
      g.remove();
      return fill;
    });
    assert.equal(red, 'rgb(185, 28, 28)');

    await waitFor(`${req.primary} shown as the green primary`, async () => {
      const ns = await nodes();
      const p = ns.find((n) => n.primary);
      return p && p.id === req.primary && p.role === 'primary' && p.fill === 'rgb(21, 128, 61)';
    });
    await openDetails(req.primary);
    await waitFor(`${req.data} in the new primary's processed data`, () =>
      page.$(`#processed-list li[data-index="${req.index}"][data-data="${req.data}"]`), { timeoutMs: 15000 });
    // the timeline shows the failover with its measured time
    await waitFor('an elected event with a failover time', () => page.$('#timeline li[data-type="elected"] .tl-failover'));
    const ft = await page.textContent('#timeline li[data-type="elected"] .tl-failover');
    assert.match(ft, /^failover \d/);
    assert.notEqual(await page.textContent('#stat-failover'), '–');
  });

  it('the failed replica comes back as a backup and catches up', async () => {
    assert.ok(fault, 'needs the fault request test');
    const id = fault.oldPrimary;
    await waitFor(`${id} up as a backup and caught up`, async () => {
      const n = (await nodes()).find((x) => x.id === id);
      const cluster = Number(await page.textContent('#stat-commit'));
      return n && n.status === 'up' && n.role === 'backup' && n.commit >= fault.index && n.commit === cluster;
    }, { timeoutMs: 60000 });
    await openDetails(id);
    // what it missed while down arrived by sync
    await waitFor(`${fault.data} in ${id}'s synced data`, () =>
      page.$(`#synced-list li[data-index="${fault.index}"][data-data="${fault.data}"]`), { timeoutMs: 15000 });
    assert.equal(await page.$('#details [data-k="progress"]:not([hidden])'), null, 'no catch-up bar once caught up');
  });

  it('takes screenshots at 1280x800 and 400x800 and stays free of errors and external requests', async () => {
    // a little traffic so the pulses and chips are visible
    await sendAndCommit('#btn-send');
    await page.fill('#request-data', 'hello from the browser test');
    await sendAndCommit('#btn-send');
    const prim = (await nodes()).find((n) => n.primary).id;
    const backup = (await nodes()).find((n) => !n.primary).id;
    await openDetails(backup);
    await waitFor('lists loaded', () => page.$('#synced-list[data-loaded] li'));
    await page.setViewportSize({ width: 1280, height: 800 });
    await waitFor('the toast to go', async () => !(await page.isVisible('#toast')), { timeoutMs: 10000 });
    await screenshot(page, 'dashboard-1280x800');
    const wide = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
    assert.ok(wide.sw <= wide.cw, `no horizontal scroll at 1280 (${wide.sw} > ${wide.cw})`);

    await page.setViewportSize({ width: 400, height: 800 });
    await openDetails(prim);
    await waitFor('lists loaded', () => page.$('#processed-list[data-loaded] li'));
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, 'dashboard-400x800');
    await screenshot(page, 'dashboard-400-full', { fullPage: true });
    const narrow = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
    assert.ok(narrow.sw <= narrow.cw, `no horizontal scroll at 400 (${narrow.sw} > ${narrow.cw})`);
    // stacked: the details panel is below the cluster, full width
    const boxes = await page.evaluate(() => ['.cluster-card', '#details'].map((s) => document.querySelector(s).getBoundingClientRect().toJSON()));
    assert.ok(boxes[1].top >= boxes[0].bottom, 'details stack under the cluster');
    await page.setViewportSize({ width: 1280, height: 800 });

    assert.deepEqual(pageErrors(page), [], 'no page errors');
    assert.deepEqual(page.external, [], 'no request leaves the coordinator');
  });
});

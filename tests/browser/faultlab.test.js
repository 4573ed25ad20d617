// The fault lab's controls against a scripted coordinator (lib/fake.js) that
// answers the "Fault lab" contract (POST/GET/DELETE /api/faults, PUT
// /api/timing) whether or not the coordinator under test has it yet: each form
// sends the contract's body, and the active faults show on the ring (a paused
// badge, a slowed link with its delay and loss, cut links for a partition), in
// the list and on the timeline; slow motion shows the timing in force; "Heal
// all" clears them.
//
//   node --test tests/browser/faultlab.test.js
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { launchBrowser, openDashboard, pageErrors, screenshot, waitFor } = require('./lib/harness');
const { FakeCoordinator, makeCluster } = require('./lib/fake');

const fake = new FakeCoordinator();
let browser;
let page;
let faults = [];
let timing = { heartbeat_ms: 50, election_min_ms: 300, election_max_ms: 600 };
let nextId = 1;

/* The fake's fault API: what the coordinator would answer, from what was posted. */
function faultApi(method, p, body) {
  if (method === 'GET' && p === '/api/faults') return { status: 200, body: { faults, timing } };
  if (method === 'POST' && p === '/api/faults') {
    const f = { id: `f${nextId++}`, ...JSON.parse(body) };
    faults.push(f);
    fake.event({ type: 'fault_started', fault: f });
    return { status: 201, body: f };
  }
  if (method === 'DELETE' && p === '/api/faults') {
    for (const f of faults) fake.event({ type: 'fault_healed', fault: f });
    faults = [];
    return { status: 200, body: { faults: [] } };
  }
  const one = /^\/api\/faults\/(.+)$/.exec(p);
  if (method === 'DELETE' && one) {
    faults = faults.filter((f) => f.id !== one[1]);
    fake.event({ type: 'fault_healed', fault: { id: one[1] } });
    return { status: 200, body: {} };
  }
  if (method === 'PUT' && p === '/api/timing') {
    const k = JSON.parse(body).slow_motion || 1;
    timing = { heartbeat_ms: 50 * k, election_min_ms: 300 * k, election_max_ms: 600 * k, slow_motion: k };
    return { status: 200, body: timing };
  }
  return null;
}

const posted = () => fake.calls.filter((c) => c.method !== 'GET' && /^\/api\/(faults|timing)/.test(c.path))
  .map((c) => ({ method: c.method, path: c.path, body: c.body ? JSON.parse(c.body) : null }));

describe('fault lab controls (scripted coordinator with the fault API)', { timeout: 120000 }, () => {
  before(async () => {
    await fake.start();
    fake.cluster = makeCluster([{ role: 'primary' }, { role: 'backup' }, { role: 'backup' }]);
    fake.onCall = faultApi;
    browser = await launchBrowser();
    page = await openDashboard(browser, `${fake.url}/`, { width: 1280, height: 800 }, { beforeGoto: (p) => fake.attach(p) });
    await waitFor('live', async () => (await page.getAttribute('#conn', 'data-state')) === 'live');
    await waitFor('3 circles', async () => (await page.$$('#cluster-svg g.node')).length === 3);
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await fake.stop();
    }
  });

  it('shows the timing in force and enables the controls', async () => {
    await waitFor('the timing', async () => /heartbeat 50 ms · election 300–600 ms/.test(await page.textContent('#lab-timing')));
    assert.equal(await page.getAttribute('#lab-card', 'data-available'), 'true');
    assert.equal(await page.isVisible('#lab-unavailable'), false);
  });

  it('pauses a replica: the contract body, a paused badge, the list', async () => {
    await waitFor('replica choices', async () => (await page.$$('#lab-pause-r option')).length === 3);
    await page.selectOption('#lab-pause-r', 'r2');
    await page.fill('#lab-pause-ms', '3000');
    await page.click('#lab-pause button[type=submit]');
    await waitFor('r2 paused on the ring', async () => (await page.getAttribute('#cluster-svg g.node[data-id="r2"]', 'data-paused')) === 'true');
    assert.deepEqual(posted().at(-1), { method: 'POST', path: '/api/faults', body: { kind: 'pause', replica: 'r2', ms: 3000 } });
    assert.match(await page.textContent('#cluster-svg g.node[data-id="r2"] .label-meta'), /paused for 3.00 s/);
    assert.match(await page.textContent('#lab-faults'), /r2 paused for 3000 ms/);
    await waitFor('the fault in the events list', async () => /fault: r2 paused for 3000 ms/.test(await page.textContent('#timeline')));
  });

  it('slows a link: delay and loss on the ring', async () => {
    await page.selectOption('#lab-link-a', 'r1');
    await page.selectOption('#lab-link-b', 'r3');
    await page.fill('#lab-link-delay', '200');
    await page.fill('#lab-link-loss', '30');
    await page.click('#lab-link button[type=submit]');
    const sel = '#cluster-svg g.fault-link.slow[data-a="r1"][data-b="r3"]';
    await waitFor('a slowed link', () => page.$(sel));
    assert.deepEqual(posted().at(-1).body, { kind: 'link', between: ['r1', 'r3'], delay_ms: 200, loss: 0.3 });
    assert.equal(await page.textContent(`${sel} text`), '+200 ms · 30% lost');
  });

  it('partitions the primary away: cut links, and the fault on the timeline', async () => {
    await page.click('#lab-partition button[type=submit]');
    await waitFor('two cut links', async () => (await page.$$('#cluster-svg g.fault-link.cut')).length === 2);
    assert.deepEqual(posted().at(-1).body, { kind: 'partition', groups: [['r1'], ['r2', 'r3']] });
    await waitFor('fault windows on the timeline', async () => (await page.$$('#scrub-card g.fault')).length === 3);
    assert.deepEqual((await page.$$eval('#scrub-card g.fault', (gs) => gs.map((g) => g.dataset.kind))).sort(), ['link', 'partition', 'pause']);
    await page.$eval('#lab-card', (e) => e.scrollIntoView({ block: 'end' }));
    await screenshot(page, 'faultlab-active-1280x800');
    await page.$eval('body', () => window.scrollTo(0, 0));
    await screenshot(page, 'faultlab-ring-1280x800');
  });

  it('slow motion x10 and back, showing the timing', async () => {
    await page.click('#lab-slow');
    await waitFor('slow timing', async () => /heartbeat 500 ms · election 3000–6000 ms \(slow motion ×10\)/.test(await page.textContent('#lab-timing')));
    assert.deepEqual(posted().at(-1), { method: 'PUT', path: '/api/timing', body: { slow_motion: 10 } });
    await page.click('#lab-normal');
    await waitFor('normal timing', async () => /^heartbeat 50 ms · election 300–600 ms$/.test(await page.textContent('#lab-timing')));
  });

  it('heals one, then all', async () => {
    await page.click('#lab-faults li[data-kind="pause"] button');
    await waitFor('r2 no longer paused', async () => (await page.getAttribute('#cluster-svg g.node[data-id="r2"]', 'data-paused')) === null);
    assert.match(posted().at(-1).path, /^\/api\/faults\/f\d+$/);
    await page.click('#lab-heal-all');
    await waitFor('no fault links', async () => (await page.$$('#cluster-svg g.fault-link')).length === 0);
    assert.deepEqual(posted().at(-1), { method: 'DELETE', path: '/api/faults', body: null });
    assert.equal(await page.$$eval('#lab-faults li', (l) => l.length), 0);
    assert.deepEqual(pageErrors(page), []);
  });
});

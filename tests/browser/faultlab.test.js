// The fault lab driven from the dashboard's own controls against a REAL
// coordinator --spawn 3 (the fault engine in the replicas' transport):
// partitioning the primary away cuts its links on the ring, it steps down and
// the majority elects another (ring and timeline), and the vote messages fly;
// healing leaves one primary; a paused backup wears its badge until the pause
// expires; a slowed link shows its delay and loss; slow motion x10 shows the
// timing in force and one labelled dot per real message, with the number of
// DOM nodes bounded; normal speed again; heal all. Screenshots at 1024x768,
// 1280x800 and 1920x1080 with a partition active in slow motion.
//
//   node --test tests/browser/faultlab.test.js
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Coordinator, getJson, launchBrowser, layoutProblems, openDashboard, pageErrors, screenshot, teardown, waitFor } = require('./lib/harness');

const coord = new Coordinator('faultlab');
let browser;
let page;
process.on('exit', () => coord.killNow());

const node = (id) => `#cluster-svg g.node[data-id="${id}"]`;
const text = (sel) => page.textContent(sel);
const primaries = () => page.$$eval('#cluster-svg g.node[data-primary="true"]', (gs) => gs.map((g) => g.dataset.id));
const faultWindows = () => page.$$eval('#scrub-card g.fault', (gs) => gs.map((g) => ({ kind: g.dataset.kind, title: g.querySelector('title').textContent })));

describe('fault lab on real processes (coordinator --spawn 3)', { timeout: 180000 }, () => {
  let first;   // the primary before the partition

  before(async () => {
    await coord.start();
    browser = await launchBrowser();
    page = await openDashboard(browser, `${coord.url}/`, { width: 1280, height: 800 });
    await waitFor('3 circles and a primary', async () => (await page.$$('#cluster-svg g.node')).length === 3 && (await primaries()).length === 1);
    // Every kind of message dot the page starts, recorded in the page (they are short-lived).
    await page.evaluate(() => {
      window.__msgTypes = new Set();
      new MutationObserver((ms) => { for (const m of ms) if (m.target.dataset && m.target.dataset.type) window.__msgTypes.add(m.target.dataset.type); })
        .observe(document.querySelector('#cluster-svg g.msgs'), { attributes: true, subtree: true, attributeFilter: ['data-type'] });
    });
  });

  after(() => teardown(browser, coord));

  it('shows the timing in force, and the controls are enabled', async () => {
    await waitFor('the timing', async () => /^heartbeat 50 ms · election 300–600 ms$/.test(await text('#lab-timing')));
    assert.equal(await page.getAttribute('#lab-card', 'data-available'), 'true');
    assert.equal(await page.isDisabled('#lab-partition button[type=submit]'), false);
  });

  it('partitions the primary away: cut links, it steps down, the majority elects another; heal leaves one primary', async () => {
    [first] = await primaries();
    const epoch = Number(await page.getAttribute(node(first), 'data-epoch'));
    await waitFor('the primary alone in group A', async () =>
      (await page.$eval(`#lab-groups select[data-id="${first}"]`, (s) => s.value)) === 'A' &&
      (await page.$$eval('#lab-groups select', (ss) => ss.filter((s) => s.value === 'B').length)) === 2);
    await page.click('#lab-partition button[type=submit]');
    const f = await waitFor('the partition in /api/faults', async () => { const x = (await getJson(`${coord.url}/api/faults`)).faults; return x.length ? x : null; });
    assert.equal(f.length, 1);
    assert.equal(f[0].kind, 'partition');
    assert.deepEqual(f[0].groups.map((g) => g.slice().sort()), [[first], ['r1', 'r2', 'r3'].filter((x) => x !== first)]);
    await waitFor('two cut links from the old primary', async () =>
      (await page.$$eval('#cluster-svg g.fault-link.cut', (gs) => gs.filter((g) => g.textContent.includes('cut')).map((g) => [g.dataset.a, g.dataset.b]))).filter((p) => p.includes(first)).length === 2);
    await waitFor('a partition window on the timeline, active', async () => (await faultWindows()).some((w) => w.kind === 'partition' && /active/.test(w.title)));
    const second = await waitFor('another primary in a later epoch on the ring', async () => {
      const p = await primaries();
      return p.length === 1 && p[0] !== first && Number(await page.getAttribute(node(p[0]), 'data-epoch')) > epoch ? p[0] : null;
    });
    assert.match(await text('#lab-faults'), new RegExp(`partition \\{${first}\\}`));
    await waitFor('the step-down and the election in the events', async () => {
      const t = await text('#timeline');
      return t.includes(`${first} stepped down`) && new RegExp(`${second} elected primary`).test(t) && /fault: partition/.test(t);
    });
    await waitFor('the new primary\'s band on its timeline lane', async () =>
      page.$$eval(`#scrub-card g.lane[data-id="${second}"] g.band`, (bs, e) => bs.some((b) => b.dataset.role === 'primary' && Number(b.dataset.epoch) > e), epoch));
    await waitFor('vote requests and votes seen as dots', async () =>
      page.evaluate(() => window.__msgTypes.has('vote_request') && window.__msgTypes.has('vote_response')));
    // Heal it from its row in the list.
    await page.click('#lab-faults li[data-kind="partition"] button');
    await waitFor('no cut link', async () => (await page.$$('#cluster-svg g.fault-link')).length === 0);
    await waitFor('the partition window closed', async () => (await faultWindows()).some((w) => w.kind === 'partition' && !/active/.test(w.title)));
    await waitFor('exactly one primary, every replica up', async () => {
      const c = await getJson(`${coord.url}/api/cluster`);
      return (await primaries()).length === 1 && c.primary && c.replicas.filter((r) => r.role === 'primary').length === 1 &&
        c.replicas.every((r) => r.status === 'up' && r.answering);
    });
    assert.match(await text('#timeline'), /fault healed: partition/);
  });

  it('pauses a backup: a paused badge with the time left, gone when the pause expires', async () => {
    const c = await getJson(`${coord.url}/api/cluster`);
    const backup = c.replicas.find((r) => r.id !== c.primary).id;
    await page.selectOption('#lab-pause-r', backup);
    await page.fill('#lab-pause-ms', '2500');
    await page.click('#lab-pause button[type=submit]');
    await waitFor('the paused badge', async () => (await page.getAttribute(node(backup), 'data-paused')) === 'true');
    assert.match(await text(`${node(backup)} .label-meta`), /^paused · \d/);
    assert.match(await text('#lab-faults'), new RegExp(`${backup} paused for 2500 ms`));
    await waitFor('a pause window on the timeline', async () => (await faultWindows()).some((w) => w.kind === 'pause'));
    await waitFor('the pause over by itself', async () => (await page.getAttribute(node(backup), 'data-paused')) === null, { timeoutMs: 15000 });
    await waitFor('no longer listed', async () => (await page.$$('#lab-faults li')).length === 0);
    await waitFor('"fault expired" in the events', async () => new RegExp(`fault expired: ${backup} paused`).test(await text('#timeline')));
  });

  it('slows a link: its delay and loss on the ring', async () => {
    await page.selectOption('#lab-link-a', 'r1');
    await page.selectOption('#lab-link-b', 'r3');
    await page.fill('#lab-link-delay', '200');
    await page.fill('#lab-link-loss', '30');
    await page.click('#lab-link button[type=submit]');
    const sel = '#cluster-svg g.fault-link.slow[data-a="r1"][data-b="r3"], #cluster-svg g.fault-link.slow[data-a="r3"][data-b="r1"]';
    await waitFor('the slowed link', () => page.$(sel));
    assert.equal(await page.textContent(`${sel} >> text`), '+200 ms · 30% lost');
    const f = (await getJson(`${coord.url}/api/faults`)).faults;
    assert.deepEqual(f.map((x) => [x.kind, x.between, x.delay_ms, x.loss]), [['link', ['r1', 'r3'], 200, 0.3]]);
  });

  it('slow motion x10: the timing, one labelled dot per real message, bounded DOM, still with reduced motion; and back', async () => {
    await page.click('#lab-slow');
    await waitFor('slow timing', async () => /heartbeat 500 ms · election 3000–6000 ms \(slow motion ×10\)/.test(await text('#lab-timing')));
    await waitFor('"slow motion ×10" in the events', async () => /timing: slow motion ×10/.test(await text('#timeline')));
    // One dot per message: a heartbeat with its epoch, an ack back.
    const dot = await waitFor('single-message dots in flight', () => page.evaluate(() => {
      const on = [...document.querySelectorAll('#cluster-svg g.msg.one')].filter((g) => g.style.display !== 'none');
      const hb = on.find((g) => g.dataset.type === 'append' && /^(heartbeat|append \+\d+) e\d+$/.test(g.textContent));
      const ack = on.find((g) => g.dataset.type === 'append_response' && /^ack e\d+$/.test(g.textContent));
      return hb && ack ? { count: hb.dataset.count, transform: hb.getAttribute('transform') } : null;
    }), { timeoutMs: 15000 });
    assert.equal(dot.count, '1');
    // The DOM stays bounded while dots come and go, and a burst beyond the pool is dropped.
    const counts = [];
    for (let i = 0; i < 10; i++) { counts.push(await page.evaluate(() => document.querySelectorAll('#cluster-svg *').length)); await page.waitForTimeout(200); }
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 4, `svg node counts ${counts}`);
    const burst = await page.evaluate(() => {
      const before = document.querySelectorAll('#cluster-svg g.msgs *').length;
      const s0 = window.ReplMessages.stats();
      window.ReplMessages.ingest({ replica: 'r1', messages: Array.from({ length: 500 }, (_, i) => ({ type: 'append', from: 'r1', to: i % 2 ? 'r2' : 'r3', epoch: 1, count: 1, time_ms: 1 })) });
      return new Promise((res) => setTimeout(() => {
        const s1 = window.ReplMessages.stats();
        res({ before, after: document.querySelectorAll('#cluster-svg g.msgs *').length, dropped: s1.dropped - s0.dropped, pool: s1.pool,
          inFlight: Number(document.querySelector('#cluster-svg g.msgs').dataset.inFlight) });
      }, 300));
    });
    assert.equal(burst.after, burst.before, 'no DOM node added for a burst');
    assert.ok(burst.dropped >= 500 - burst.pool, `dropped ${burst.dropped}`);
    assert.ok(burst.inFlight <= burst.pool);
    // prefers-reduced-motion: a dot shows where it is, without travelling.
    await page.emulateMedia({ reducedMotion: 'reduce' });
    const n0 = await page.evaluate(() => window.ReplMessages.stats().shown);   // dots started from now on
    const still = await waitFor('a dot that stays put', () => page.evaluate((n0) => new Promise((res) => {
      const on = () => [...document.querySelectorAll('#cluster-svg g.msg.one')].filter((g) => g.style.display !== 'none' && Number(g.dataset.n) > n0);
      const g = on()[0];
      if (!g) { res(null); return; }
      const t0 = g.getAttribute('transform'), n = g.dataset.n;
      setTimeout(() => res(g.style.display !== 'none' && g.dataset.n === n
        ? { same: g.getAttribute('transform') === t0, t0, t1: g.getAttribute('transform') } : null), 150);
    }), n0), { timeoutMs: 15000 });
    assert.ok(still.same, `the dot moved with reduced motion (${still.t0} → ${still.t1})`);
    await page.emulateMedia({ reducedMotion: 'no-preference' });
    await page.click('#lab-normal');
    await waitFor('normal timing', async () => /^heartbeat 50 ms · election 300–600 ms$/.test(await text('#lab-timing')));
    await waitFor('aggregated flow dots again', () => page.$('#cluster-svg g.msg.flow'));
  });

  it('shows a long data value whole on focus (two lines otherwise, not cut to one line)', async () => {
    const data = `long-${'0123456789abcdef'.repeat(10)}-end`;
    const res = await fetch(`${coord.url}/api/requests`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ data, id: `long-${Date.now()}` }), signal: AbortSignal.timeout(30000) });
    assert.equal(res.status, 201);
    const [p] = await primaries();
    await page.click(`${node(p)} .body`);
    const sel = `#processed-list li[data-data="${data}"] .d`;
    await waitFor('the long value in the primary\'s processed list', () => page.$(sel), { timeoutMs: 15000 });
    const before = await page.$eval(sel, (e) => ({ h: e.getBoundingClientRect().height, clipped: e.scrollHeight > e.clientHeight + 1, lh: parseFloat(getComputedStyle(e).lineHeight) || 16 }));
    assert.ok(before.clipped && before.h >= 1.5 * before.lh, `two clamped lines (${JSON.stringify(before)})`);
    await page.focus(sel);
    const after = await page.$eval(sel, (e) => ({ h: e.getBoundingClientRect().height, clipped: e.scrollHeight > e.clientHeight + 1,
      scrolls: getComputedStyle(e).overflowY === 'auto', text: e.textContent }));
    assert.equal(after.text, data);
    // All of it: unclipped, or (a very long one) in a box that scrolls.
    assert.ok(after.h > before.h && (!after.clipped || after.scrolls), `whole on focus (${JSON.stringify(after)})`);
    await page.click('#details button[aria-label="Close details"]');
  });

  it('partition in slow motion at three sizes (screenshots), then heal all', async () => {
    await page.click('#lab-slow');
    await waitFor('slow timing', async () => /slow motion ×10/.test(await text('#lab-timing')));
    const [p] = await primaries();
    await page.selectOption('#lab-isolate-r', p);
    await page.click('#lab-isolate button[type=submit]');
    await waitFor('cut links', async () => (await page.$$('#cluster-svg g.fault-link.cut')).length >= 2);
    for (const [w, h] of [[1024, 768], [1280, 800], [1920, 1080]]) {
      await page.setViewportSize({ width: w, height: h });
      await page.waitForTimeout(700);   // the ring's 450 ms move to the new size
      await waitFor(`dots in flight at ${w}x${h}`, () => page.$('#cluster-svg g.msg.one:not([style*="none"])'), { timeoutMs: 15000 });
      // The ring moves to its new size in a 450 ms transition: poll until it has settled.
      let last = null;
      await waitFor(`no layout problem at ${w}x${h}`, async () => (last = await layoutProblems(page)).length === 0, { timeoutMs: 10000 })
        .catch((e) => { throw new Error(`${e.message}: ${last.join('; ')}`); });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.waitForTimeout(150);   // let a dot move on after the scroll
      await screenshot(page, `faultlab-slow-partition-${w}x${h}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.click('#lab-heal-all');
    await page.click('#lab-normal');
    await waitFor('no fault links and no listed fault', async () => (await page.$$('#cluster-svg g.fault-link')).length === 0 && (await page.$$('#lab-faults li')).length === 0);
    await waitFor('normal timing', async () => /^heartbeat 50 ms/.test(await text('#lab-timing')));
    await waitFor('every fault window closed', async () => (await faultWindows()).every((w) => !/active/.test(w.title)));
    assert.deepEqual(pageErrors(page), []);
  });
});

// The dashboard against a scripted coordinator (lib/fake.js): every membership
// field of the API contract, whether or not the coordinator under test sends it
// yet, and the layout with 2 to 7 replicas at 1024x768, 1280x800 and 1920x1080
// (no circle or label overlaps another or leaves the drawing, nothing is cut
// off, no horizontal scroll), with screenshots of each.
//
//   node --test tests/browser/layout.test.js
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { launchBrowser, layoutProblems: problemsIn, openDashboard, screenshot, sleep, waitFor } = require('./lib/harness');
const { FakeCoordinator, makeCluster } = require('./lib/fake');

const SIZES = [[1024, 768], [1280, 800], [1920, 1080]];

/* One cluster per size, each with the kinds of replicas that size makes likely. */
const SCENARIOS = {
  2: [{ role: 'primary' }, { role: 'backup' }],
  3: [{ role: 'primary' }, { role: 'backup' }, { role: 'learner', member: false }],
  4: [{ role: 'backup' }, { role: 'primary' }, { role: 'backup', status: 'down' }, { role: 'removed' }],
  5: [{ role: 'primary' }, { role: 'backup' }, { role: 'backup' }, { role: 'learner' }, { role: 'backup', status: 'failed' }],
  6: [{ role: 'primary' }, { role: 'backup' }, { role: 'backup', status: 'down' }, { role: 'backup' },
    { role: 'learner' }, { role: 'removed' }],
  7: [{ role: 'primary' }, { role: 'backup' }, { role: 'backup' }, { role: 'backup', status: 'down' },
    { role: 'learner' }, { role: 'learner', member: false }, { role: 'removed' }],
};
// container-style names for the 7-replica ring: labels shorten them
const LONG = (i) => `replicacao-replica-${i + 1}.replicacao_default`;

const fake = new FakeCoordinator();
let browser;
let page;

const layoutProblems = () => problemsIn(page);

async function show(cluster) {
  fake.setCluster(cluster);
  await waitFor(`${cluster.replicas.length} circles`, async () =>
    (await page.$$('#cluster-svg g.node:not(.exiting)')).length === cluster.replicas.length &&
    (await page.$$('#cluster-svg g.node.exiting')).length === 0);
  await sleep(700);   // enter/move transitions
}

describe('dashboard layout and membership contract (scripted coordinator)', { timeout: 240000 }, () => {
  before(async () => {
    await fake.start();
    fake.cluster = makeCluster(SCENARIOS[3]);
    browser = await launchBrowser();
    page = await openDashboard(browser, `${fake.url}/`, { width: 1280, height: 800 }, { beforeGoto: (p) => fake.attach(p) });
    await waitFor('live', async () => (await page.getAttribute('#conn', 'data-state')) === 'live');
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await fake.stop();
    }
  });

  it('summarises the configuration and warns when no majority is reachable', async () => {
    await show(makeCluster([{ role: 'primary' }, { role: 'backup' }, { role: 'backup' }, { role: 'learner' }]));
    await waitFor('the summary', async () => /3 voters · 1 learner · majority needs 2 · 3 of 3 reachable/.test(await page.textContent('#config-text')));
    assert.equal(await page.getAttribute('#config-summary', 'data-state'), 'ok');
    assert.equal(await page.getAttribute('#config-summary', 'data-source'), 'reported');
    assert.equal(await page.isVisible('#config-hint'), false);
    assert.equal(await page.isVisible('#stat-cluster'), true, 'the cluster id is shown');

    // still forming: the coordinator names no configuration yet
    const forming = makeCluster([{ role: 'candidate' }, { role: 'backup' }, { role: 'backup' }]);
    Object.assign(forming, { cluster_id: '', config_index: 0, voters: [], learners: [], quorum: 0, reachable_voters: 0 });
    for (const r of forming.replicas) r.member = false;
    await show(forming);
    await waitFor('the forming note', async () => (await page.getAttribute('#config-summary', 'data-state')) === 'unknown');
    assert.equal(await page.textContent('#config-text'), 'The cluster is still forming: no configuration yet…');
    assert.deepEqual(await page.$$eval('#cluster-svg g.node', (gs) => gs.map((g) => g.dataset.member)), ['voter', 'voter', 'voter']);
    assert.equal(await page.isVisible('#stat-cluster'), false);

    // 5 voters, 3 of them down: no majority, no primary
    const lost = makeCluster([{ role: 'candidate' }, { role: 'backup' }, { role: 'backup', status: 'down' },
      { role: 'backup', status: 'down' }, { role: 'backup', status: 'failed' }]);
    await show(lost);
    await waitFor('the quorum warning', async () => (await page.getAttribute('#config-summary', 'data-state')) === 'lost');
    assert.equal(await page.textContent('#config-text'),
      '2 of 5 voters reachable — a majority needs 3: no primary can be elected · config #9');
    assert.equal(await page.isVisible('#config-hint'), true);
    assert.match(await page.textContent('#config-hint'), /forced recovery .*last resort.*README/);
    assert.match(await page.textContent('.watermark-sub'), /no majority/);
    const bg = await page.$eval('#config-summary', (e) => getComputedStyle(e).backgroundColor);
    assert.equal(bg, 'rgb(42, 18, 21)', 'the warning is red');
    for (const [w, hgt] of SIZES) {
      await page.setViewportSize({ width: w, height: hgt });
      await sleep(500);
      assert.deepEqual(await layoutProblems(), [], `quorum lost at ${w}x${hgt}`);
      await screenshot(page, `layout-quorum-lost-${w}x${hgt}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('lays out 2 to 7 replicas at 1024x768, 1280x800 and 1920x1080 without overlaps', async () => {
    const all = [];
    for (const [w, hgt] of SIZES) {
      await page.setViewportSize({ width: w, height: hgt });
      for (let n = 2; n <= 7; n++) {
        await show(makeCluster(SCENARIOS[n], n === 7 ? { names: LONG } : {}));
        const problems = await layoutProblems();
        all.push(...problems.map((p) => `${w}x${hgt}, ${n} replicas: ${p}`));
        await screenshot(page, `layout-${w}x${hgt}-${n}`);
        if (n === 7) await screenshot(page, `layout-${w}x${hgt}-${n}-full`, { fullPage: true });
      }
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    assert.deepEqual(all, []);
  });

  it('tells learners, non-voting, joining and removed replicas apart, on circles and in the table', async () => {
    const kinds = makeCluster([{ role: 'primary' }, { role: 'backup' }, { role: 'backup', voter: false },
      { role: 'learner' }, { role: 'learner', member: false }, { role: 'removed' }, { role: 'backup', status: 'failed', member: false }]);
    kinds.replicas[6].start_failed = true;   // a --spawn replica given up before it joined
    await show(kinds);
    const ns = await page.$$eval('#cluster-svg g.node', (gs) => gs.map((g) => ({
      id: g.dataset.id, member: g.dataset.member, voter: g.dataset.voter,
      dash: getComputedStyle(g.querySelector('.body')).strokeDasharray,
      opacity: getComputedStyle(g.querySelector('.body')).opacity, glyph: g.querySelector('.glyph').textContent,
      label: g.querySelector('.label-name').textContent, aria: g.getAttribute('aria-label'),
    })));
    const by = Object.fromEntries(ns.map((n) => [n.id, n]));
    assert.equal(by.r1.member, 'voter'); assert.equal(by.r1.voter, 'true'); assert.equal(by.r1.dash, 'none');
    assert.equal(by.r3.member, 'learner'); assert.match(by.r3.label, /non-voting/); assert.notEqual(by.r3.dash, 'none');
    assert.equal(by.r4.member, 'learner'); assert.equal(by.r4.glyph, 'L');
    assert.equal(by.r5.member, 'joining'); assert.match(by.r5.label, /joining/);
    assert.equal(by.r6.member, 'removed'); assert.equal(by.r6.glyph, '−'); assert.match(by.r6.label, /removed/);
    assert.ok(Number(by.r6.opacity) < 0.8, 'a removed replica is greyed');
    assert.notEqual(by.r6.dash, 'none', 'a removed replica is dashed');
    assert.match(by.r6.aria, /removed from the configuration/);
    assert.equal(by.r7.member, 'outside'); assert.equal(by.r7.glyph, '✕'); assert.match(by.r7.label, /given up/);
    assert.match(by.r7.aria, /given up/);
    // no replication link to the removed replica
    const targets = await page.$$eval('#cluster-svg line.link', (ls) => ls.map((l) => l.dataset.target));
    assert.ok(!targets.includes('r6'));
    const cells = await page.$$eval('#replica-table tbody tr', (trs) => trs.map((tr) => [tr.dataset.id, tr.querySelector('.c-member').textContent]));
    assert.deepEqual(cells, [['r1', 'voter'], ['r2', 'voter'], ['r3', 'learner'], ['r4', 'learner'], ['r5', 'joining'],
      ['r6', 'removed'], ['r7', 'no member']]);
    // the given-up one can be forgotten from its row
    assert.equal(await page.isVisible('#replica-table tr[data-id="r7"] .btn-remove-row'), true);
    assert.equal(await page.isVisible('#replica-table tr[data-id="r6"] .btn-remove-row'), false);
    assert.equal(await page.textContent('#replica-table thead th:nth-child(3)'), 'member');
    await screenshot(page, 'layout-kinds-1280x800');
  });

  it('removes a member after a confirmation, and shows the API\'s error on 409 and 404', async () => {
    const c = makeCluster([{ role: 'primary' }, { role: 'backup' }, { role: 'backup', status: 'down' }]);
    await show(c);
    // a dead member offers Remove in its table row
    await waitFor('a Remove button on the dead row', () => page.isVisible('#replica-table tr[data-id="r3"] .btn-remove-row'));
    assert.equal(await page.isVisible('#replica-table tr[data-id="r2"] .btn-remove-row'), false, 'not on live rows');
    // 409: the API's message is shown
    fake.onCall = (method, p) => (method === 'DELETE' && p === '/api/replicas/r2'
      ? { status: 409, body: { error: { code: 'no_quorum', message: 'removing r2 would leave 1 of 2 voters reachable' } } } : null);
    await page.click('#cluster-svg g.node[data-id="r2"] .body');
    await waitFor('details for r2', () => page.$('#details[data-replica="r2"] #details-name'));
    await page.click('#details [data-k="remove"]');
    assert.equal(await page.isVisible('#confirm-remove'), true, 'a confirmation step');
    assert.equal(fake.calls.filter((x) => x.method === 'DELETE').length, 0, 'nothing sent before confirming');
    assert.match(await page.textContent('#confirm-remove'), /Remove r2 from the cluster\?.*Afterwards: 2 voters, a majority needs 2, 1 of them reachable now\..*refuse/);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.k), 'confirm-no', 'focus on Cancel');
    await screenshot(page, 'layout-confirm-remove');
    await page.click('#details [data-k="confirm-yes"]');
    await waitFor('the 409 message', () => page.isVisible('#details [data-k="action-err"]'));
    assert.equal(await page.textContent('#details [data-k="action-err"]'),
      'Removing r2 would leave 1 of 2 voters reachable (409 no_quorum)');
    assert.equal(await page.isVisible('#confirm-remove'), false);

    // Escape cancels a confirmation without sending anything
    await page.click('#details [data-k="remove"]');
    await page.keyboard.press('Escape');
    assert.equal(await page.isVisible('#confirm-remove'), false);
    assert.equal(fake.calls.filter((x) => x.method === 'DELETE').length, 1);

    // 404
    fake.onCall = (method) => (method === 'DELETE' ? { status: 404, body: { error: { code: 'not_found', message: 'no replica with that id' } } } : null);
    await page.click('#details [data-k="remove"]');
    await page.click('#details [data-k="confirm-yes"]');
    await waitFor('the 404 message', async () => (await page.textContent('#details [data-k="action-err"]')) ===
      'Could not remove r2: no replica with that id (404 not_found)');

    // 202 from the row's Remove on the dead member: removing…, then gone
    fake.onCall = (method, p) => (method === 'DELETE' && p === '/api/replicas/r3' ? { status: 202, body: { removing: 'r3' } } : null);
    await page.click('#replica-table tr[data-id="r3"] .btn-remove-row');
    await waitFor('details for r3 with the confirmation', () => page.isVisible('#details[data-replica="r3"] #confirm-remove'));
    assert.match(await page.getAttribute('#details [data-k="remove"]', 'class'), /btn-danger/, 'prominent for a dead member');
    assert.match(await page.textContent('#details [data-k="member-note"]'), /r3 is down, but it still counts as a voter/);
    await page.click('#details [data-k="confirm-yes"]');
    await waitFor('removing…', async () => (await page.textContent('#details [data-k="remove"]')) === 'Removing…');
    assert.equal(await page.textContent('#cluster-svg g.node[data-id="r3"] .label-meta'), 'removing…');
    const after = makeCluster([{ role: 'primary' }, { role: 'backup' }]);
    after.config_index = 10;
    fake.setCluster(after);
    fake.event({ type: 'removed', replica: 'r1', subject: 'r3', replica_name: 'r1', subject_name: 'r3' });
    await waitFor('r3 gone', async () => (await page.$$('#cluster-svg g.node')).length === 2);
    await waitFor('the summary to change', async () => /^2 voters · majority needs 2 · 2 of 2 reachable/.test(await page.textContent('#config-text')));
    assert.match(await page.textContent('#details [data-k="member-note"]'), /r3 was removed from the cluster/);
    assert.match(await page.textContent('#timeline li[data-type="removed"]'), /r3 left the configuration/);
    fake.onCall = null;
  });

  it('offers Add replica and Fail & replace only in spawn mode', async () => {
    await show(makeCluster([{ role: 'primary' }, { role: 'backup' }, { role: 'backup' }], { spawn: true }));
    await waitFor('Add replica visible', () => page.isVisible('#btn-add-replica'));
    fake.onCall = (method, p) => {
      if (method === 'POST' && p === '/api/replicas') return { status: 202, body: { id: 'r4' } };
      if (method === 'POST' && p === '/api/replicas/r2/fail?replace=true') return { status: 202, body: { failed: 'r2', replacement: 'r5' } };
      return null;
    };
    await page.click('#btn-add-replica');
    await waitFor('the toast', async () => /Starting r4/.test(await page.textContent('#toast')));
    await page.click('#cluster-svg g.node[data-id="r2"] .body');
    await waitFor('Fail & replace', () => page.isVisible('#details[data-replica="r2"] [data-k="fail-replace"]'));
    await page.click('#details [data-k="fail-replace"]');
    await waitFor('the replace toast', async () => /r2 failed on purpose; r5 takes its place/.test(await page.textContent('#toast')));
    assert.ok(fake.calls.some((x) => x.method === 'POST' && x.path === '/api/replicas/r2/fail?replace=true'));

    await show(makeCluster([{ role: 'primary' }, { role: 'backup' }, { role: 'backup' }], { spawn: false }));
    await waitFor('Add replica hidden', async () => !(await page.isVisible('#btn-add-replica')));
    assert.equal(await page.isVisible('#details [data-k="fail-replace"]'), false);
    fake.onCall = null;
  });

  it('names replicas in the timeline as the circles do; new event types read well; forced_config is loud', async () => {
    await show(makeCluster([{ role: 'primary' }, { role: 'backup' }, { role: 'backup' }], { names: (i) => `node-${String.fromCharCode(97 + i)}` }));
    fake.event({ type: 'joined', replica: 'r4', subject: 'r4', replica_name: 'node-d', subject_name: 'node-d' });
    fake.event({ type: 'caught_up', replica: 'r1', subject: 'r4', subject_name: 'node-d' });
    fake.event({ type: 'handover', replica: 'r1', subject: 'r2', replica_name: 'node-a', subject_name: 'node-b' });
    fake.event({ type: 'start_failed', replica: 'r9', subject: 'r9', detail: 'exited 5 times within 10 s' });   // never listed: its id
    fake.event({ type: 'elected', replica: 'r2', subject: 'r2' });   // no names: taken from the snapshot
    fake.event({ type: 'forced_config', replica: 'r2', subject: 'r2', replica_name: 'node-b', detail: 'voters now r2' });
    await waitFor('the forced_config row', () => page.$('#timeline li[data-type="forced_config"]'));
    const text = (t) => page.textContent(`#timeline li[data-type="${t}"] .tl-text`);
    assert.equal(await text('joined'), 'node-d joined as a learner');
    assert.equal(await text('caught_up'), 'node-d caught up and became a voter');
    assert.equal(await text('handover'), 'primary node-a removed itself and hands over to node-b');
    assert.equal(await text('start_failed'), 'r9 keeps crashing at start: given up (not restarted again) — exited 5 times within 10 s');
    assert.match(await text('elected'), /^node-b elected primary/);
    assert.match(await text('forced_config'), /^UNSAFE forced recovery: node-b was made the only voter without a majority/);
    const row = await page.$eval('#timeline li[data-type="forced_config"]', (li) => ({
      role: li.getAttribute('role'), cls: li.className, bg: getComputedStyle(li).backgroundColor, border: getComputedStyle(li).borderTopColor,
    }));
    assert.equal(row.role, 'alert');
    assert.match(row.cls, /k-alarm/);
    assert.equal(row.bg, 'rgb(59, 17, 20)');
    await screenshot(page, 'layout-timeline-1280x800');
  });

  it('degrades on an older coordinator: no membership fields, no Remove or Add, a derived summary', async () => {
    await show(makeCluster([{ role: 'primary' }, { role: 'backup' }, { role: 'backup', status: 'down' }], { membership: false }));
    await waitFor('the derived summary', async () => (await page.getAttribute('#config-summary', 'data-source')) === 'derived');
    assert.match(await page.textContent('#config-text'), /^3 voters · majority needs 2 · 2 of 3 reachable · no voter to spare$/);
    assert.equal(await page.isVisible('#btn-add-replica'), false);
    assert.equal(await page.isVisible('#stat-cluster'), false);
    assert.equal(await page.isVisible('#replica-table tr[data-id="r3"] .btn-remove-row'), false);
    await page.click('#cluster-svg g.node[data-id="r3"] .body');
    await waitFor('details for r3', () => page.$('#details[data-replica="r3"] #details-name'));
    assert.equal(await page.isVisible('#details [data-k="remove"]'), false);
    assert.equal(await page.isVisible('#details [data-k="fail-replace"]'), false);
    const cells = await page.$$eval('#replica-table tbody tr .c-member', (tds) => tds.map((td) => td.textContent));
    assert.deepEqual(cells, ['voter', 'voter', 'voter']);
    // the 409 and 404 answers above are logged by the browser; nothing else may be
    assert.deepEqual(page.errors.filter((e) => !/Failed to load resource: .* (409|404)/.test(e)), [], 'no page errors');
    assert.deepEqual(page.external, [], 'no request leaves the coordinator');
  });
});

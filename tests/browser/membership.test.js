// Membership in the dashboard against a real coordinator --spawn 3: the
// configuration summary; "Remove from cluster" on a backup (with its
// confirmation) takes it out of the configuration and the summary follows;
// "Add replica" starts a fourth replica whose circle joins as a learner and
// becomes a voter; screenshots at 1024x768, 1280x800 and 1920x1080.
//
// Remove and Add need the coordinator's membership API (DESIGN.md, "Contract
// additions (second wave)" -> "Membership"). Against a coordinator that does
// not have it yet ("voters" missing from GET /api/cluster, or "spawn" not true)
// those steps are skipped, saying so; the summary is checked either way.
//
//   node --test tests/browser/membership.test.js
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Coordinator, getJson, launchBrowser, layoutProblems, openDashboard, pageErrors, screenshot, sleep, waitFor } = require('./lib/harness');

const coord = new Coordinator('membership', { sparePorts: 4 });
let browser;
let page;
process.on('exit', () => coord.killNow());

async function nodes() {
  return page.$$eval('#cluster-svg g.node:not(.exiting)', (gs) => gs.map((g) => ({
    id: g.dataset.id, role: g.dataset.role, status: g.dataset.status, member: g.dataset.member,
    voter: g.dataset.voter === 'true', primary: g.dataset.primary === 'true',
  })));
}

const summary = () => page.textContent('#config-text');

const replicaPid = (id) => coord.replicaPid(id);

async function openDetails(id) {
  await page.click(`#cluster-svg g.node[data-id="${id}"] .body`);
  await waitFor(`details for ${id}`, () => page.$(`#details[data-replica="${id}"] #details-name`));
}

describe('membership in the dashboard, against a live coordinator --spawn 3', { timeout: 300000 }, () => {
  let api = null;   // the first GET /api/cluster: which contract fields this coordinator has

  before(async () => {
    await coord.start();
    api = await getJson(`${coord.url}/api/cluster`);
    browser = await launchBrowser();
    page = await openDashboard(browser, `${coord.url}/`);
    await waitFor('live', async () => (await page.getAttribute('#conn', 'data-state')) === 'live');
  });

  after(async () => {
    try {
      if (page) await screenshot(page, 'membership-final').catch(() => {});
      if (browser) await browser.close();
    } finally {
      await coord.stop();
      coord.cleanup();
    }
  });

  it('shows the configuration summary: 3 voters, a majority of 2, 3 of 3 reachable', async () => {
    await waitFor('the summary', async () => /^3 voters · majority needs 2 · 3 of 3 reachable/.test(await summary()), { timeoutMs: 20000 });
    assert.equal(await page.getAttribute('#config-summary', 'data-state'), 'ok');
    const source = await page.getAttribute('#config-summary', 'data-source');
    assert.equal(source, Array.isArray(api.voters) ? 'reported' : 'derived');
    if (Array.isArray(api.voters)) {
      assert.equal(api.voters.length, 3);
      assert.equal(api.quorum, 2);
    }
    // every circle is a voter, and the table says so
    const ns = await nodes();
    assert.equal(ns.length, 3);
    assert.ok(ns.every((n) => n.member === 'voter' && n.voter), JSON.stringify(ns));
    assert.deepEqual(await page.$$eval('#replica-table tbody .c-member', (tds) => tds.map((td) => td.textContent)), ['voter', 'voter', 'voter']);
    // "Add replica" only where POST /api/replicas exists
    assert.equal(await page.isVisible('#btn-add-replica'), api.spawn === true);
  });

  it('Remove is refused with the API\'s own message when it would leave no majority reachable (409)', async (t) => {
    if (!Array.isArray(api.voters)) {
      t.skip('this coordinator has no membership API yet ("voters" missing from GET /api/cluster)');
      return;
    }
    const [paused, target] = (await nodes()).filter((n) => n.role === 'backup' && n.status === 'up' && !n.primary);
    assert.ok(paused && target, 'two backups');
    const pid = replicaPid(paused.id);
    assert.ok(pid, `the pid of ${paused.id}`);
    process.kill(pid, 'SIGSTOP');   // it stops answering the primary: only 2 of 3 voters answer
    try {
      await sleep(1500);
      await openDetails(target.id);
      await page.click('#details [data-k="remove"]');
      await page.click('#details [data-k="confirm-yes"]');
      await waitFor('the refusal', () => page.isVisible('#details [data-k="action-err"]'), { timeoutMs: 30000 });
      const text = await page.textContent('#details [data-k="action-err"]');
      assert.match(text, / \(409 no_quorum\)$/);
      assert.ok(text.includes(target.id), text);
      await screenshot(page, 'membership-409');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // nothing changed
    const c = await getJson(`${coord.url}/api/cluster`);
    assert.equal(c.voters.length, 3);
    await waitFor('3 of 3 reachable again', async () => /^3 voters · majority needs 2 · 3 of 3 reachable/.test(await summary()), { timeoutMs: 20000 });
  });

  it('"Remove from cluster" on a backup takes it out of the configuration; the summary follows', async (t) => {
    if (!Array.isArray(api.voters)) {
      t.skip('this coordinator has no membership API yet ("voters" missing from GET /api/cluster)');
      return;
    }
    const backup = (await nodes()).find((n) => n.role === 'backup' && n.status === 'up' && !n.primary);
    assert.ok(backup, 'a backup to remove');
    await page.click(`#cluster-svg g.node[data-id="${backup.id}"] .body`);
    await waitFor(`details for ${backup.id}`, () => page.$(`#details[data-replica="${backup.id}"] #details-name`));
    await page.click('#details [data-k="remove"]');
    assert.equal(await page.isVisible('#confirm-remove'), true, 'a confirmation first');
    assert.match(await page.textContent('#confirm-remove'), /Afterwards: 2 voters, a majority needs 2, 2 of them reachable now\./);
    await page.click('#details [data-k="confirm-yes"]');
    const err = await page.$('#details [data-k="action-err"]:not([hidden])');
    assert.equal(err, null, err ? await err.textContent() : '');
    // gone from the ring: under --spawn the supervisor stops a removed replica once its
    // removal commits (without it, a removed replica that still runs stays, greyed)
    await waitFor(`${backup.id} out of the configuration`, async () => {
      const n = (await nodes()).find((x) => x.id === backup.id);
      return api.spawn ? !n : !n || n.member === 'removed';
    }, { timeoutMs: 30000 });
    await waitFor('the summary: 2 voters', async () => /^2 voters · majority needs 2 · 2 of 2 reachable/.test(await summary()), { timeoutMs: 10000 });
    const c = await getJson(`${coord.url}/api/cluster`);
    assert.ok(!c.voters.includes(backup.id), `${backup.id} left voters (${c.voters})`);
    await waitFor('a "removed" event in the timeline', () => page.$('#timeline li[data-type="removed"]'), { timeoutMs: 10000 });
    const name = await page.evaluate((id) => window.__dashboard.names.get(id) || id, backup.id);
    assert.ok((await page.textContent('#timeline li[data-type="removed"] .tl-text')).startsWith(`${name} left the configuration`));
    // the cluster still works with two voters
    await page.click('#btn-send');
    await waitFor('a request to commit', async () =>
      (await page.getAttribute('#requests li:first-child', 'data-state')) === 'committed', { timeoutMs: 30000 });
  });

  it('"Add replica" adds a circle that joins as a learner and becomes a voter', async (t) => {
    if (api.spawn !== true || !Array.isArray(api.voters)) {
      t.skip('this coordinator does not offer POST /api/replicas yet ("spawn" not true in GET /api/cluster)');
      return;
    }
    const before = new Set((await nodes()).map((n) => n.id));
    const voters = (await getJson(`${coord.url}/api/cluster`)).voters.length;
    await page.click('#btn-add-replica');
    const added = await waitFor('a new circle', async () => (await nodes()).find((n) => !before.has(n.id)), { timeoutMs: 30000 });
    await waitFor(`${added.id} to become a voter`, async () => {
      const n = (await nodes()).find((x) => x.id === added.id);
      return n && n.voter && n.member === 'voter' && n.status === 'up';
    }, { timeoutMs: 60000 });
    const q = Math.floor((voters + 1) / 2) + 1;
    await waitFor(`the summary: ${voters + 1} voters`, async () =>
      new RegExp(`^${voters + 1} voters · majority needs ${q} · ${voters + 1} of ${voters + 1} reachable`).test(await summary()), { timeoutMs: 10000 });
    assert.equal(await page.textContent(`#replica-table tr[data-id="${added.id}"] .c-member`), 'voter');
    // the timeline tells the story by name
    await waitFor('joined and caught_up events', async () => {
      const rows = await page.$$eval('#timeline li', (lis) => lis.map((li) => [li.dataset.type, li.querySelector('.tl-text').textContent]));
      return rows.some(([ty, tx]) => ty === 'joined' && tx.startsWith(`${added.id} joined as a learner`)) &&
        rows.some(([ty, tx]) => ty === 'caught_up' && tx.startsWith(`${added.id} caught up and became a voter`));
    }, { timeoutMs: 10000 });
  });

  it('"Fail & replace" swaps a backup for a new replica that becomes a voter', async (t) => {
    if (api.spawn !== true || !Array.isArray(api.voters)) {
      t.skip('this coordinator does not offer fail?replace=true yet ("spawn" not true in GET /api/cluster)');
      return;
    }
    const victim = (await nodes()).find((n) => n.role === 'backup' && n.status === 'up' && !n.primary);
    const before = new Set((await nodes()).map((n) => n.id));
    const voters = (await getJson(`${coord.url}/api/cluster`)).voters.length;
    await openDetails(victim.id);
    await page.click('#details [data-k="fail-replace"]');
    await waitFor('the toast', async () => /takes its place/.test(await page.textContent('#toast')));
    const added = await waitFor('the replacement circle', async () => (await nodes()).find((n) => !before.has(n.id)), { timeoutMs: 30000 });
    await waitFor(`${added.id} a voter, ${victim.id} gone`, async () => {
      const ns = await nodes();
      const n = ns.find((x) => x.id === added.id);
      return n && n.member === 'voter' && !ns.some((x) => x.id === victim.id);
    }, { timeoutMs: 90000 });
    await waitFor(`the summary: ${voters} voters`, async () => new RegExp(`^${voters} voters · `).test(await summary()), { timeoutMs: 10000 });
  });

  it('keeps its layout at 1024x768, 1280x800 and 1920x1080 (screenshots) with no page errors', async () => {
    const problems = [];
    for (const [w, h] of [[1024, 768], [1280, 800], [1920, 1080]]) {
      await page.setViewportSize({ width: w, height: h });
      await sleep(600);
      problems.push(...(await layoutProblems(page)).map((p) => `${w}x${h}: ${p}`));
      await screenshot(page, `membership-${w}x${h}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    assert.deepEqual(problems, []);
    // the refused removal's 409 is logged by the browser; nothing else may be
    assert.deepEqual(pageErrors(page).filter((e) => !/Failed to load resource: .* 409/.test(e)), [], 'no page errors');
    assert.deepEqual(page.external, [], 'no request leaves the coordinator');
  });
});

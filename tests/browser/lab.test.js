// The dashboard as a teacher uses it, against a real coordinator --spawn 3 with
// real processes: a request sent with curl-like HTTP (not by the page) appears;
// a SIGKILLed primary stays red and labelled "primary, killed" until it is back
// and keeps its red band on the timeline; a frozen (SIGSTOPped) replica is not
// counted as up; a reload keeps the events and the last failover; scrubbing the
// timeline back shows the earlier primary on the ring; the fault lab says so
// when the coordinator has no fault API; and the layout at 1024x768, 1280x800
// and 1920x1080 (nothing overflows the viewport or overlaps), with screenshots.
//
//   node --test tests/browser/lab.test.js
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Coordinator, getJson, launchBrowser, layoutProblems, openDashboard, pageErrors, screenshot, sleep, teardown, waitFor } = require('./lib/harness');

const coord = new Coordinator('lab');
let browser;
let page;
process.on('exit', () => coord.killNow());

async function post(path, body) {
  const res = await fetch(`${coord.url}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    signal: AbortSignal.timeout(30000),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

const node = (id) => `#cluster-svg g.node[data-id="${id}"]`;

/* Overflow and overlap beyond the ring's own checks (layoutProblems): every
 * card inside the viewport horizontally, the events panel starting on the first
 * screen, the replica table's last column visible, the timeline's lane labels
 * not overlapping each other, the header's items not overlapping. */
async function pageProblems() {
  return page.evaluate(() => {
    const out = [];
    const R = (e) => e.getBoundingClientRect();
    const vw = document.documentElement.clientWidth, vh = window.innerHeight;
    for (const e of document.querySelectorAll('.card, .topbar')) {
      const r = R(e);
      if (r.width === 0) continue;
      if (r.left < -1 || r.right > vw + 1) out.push(`${e.id || e.className} leaves the viewport (${Math.round(r.left)}..${Math.round(r.right)} of ${vw})`);
      if (e.scrollWidth > e.clientWidth + 1 && !e.classList.contains('col-timeline')) out.push(`${e.id || e.className} overflows (${e.scrollWidth} > ${e.clientWidth})`);
    }
    const ev = R(document.querySelector('.col-timeline'));
    if (ev.top >= vh - 40) out.push(`the events panel starts off screen (top ${Math.round(ev.top)} of ${vh})`);
    const scroll = R(document.querySelector('.table-scroll'));
    const last = document.querySelector('#replica-table thead th:last-child');
    const lastData = [...document.querySelectorAll('#replica-table thead th')].filter((th) => getComputedStyle(th).display !== 'none').slice(-2)[0];
    if (lastData && R(lastData).right > scroll.right + 1) out.push(`the table's column "${lastData.textContent}" is cut off`);
    if (last && R(last).right > scroll.right + 1) out.push('the table\'s actions column is cut off');
    const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    const names = [...document.querySelectorAll('#scrub-card .lane-name')].map(R);
    for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) if (hit(names[i], names[j])) out.push('timeline lane names overlap');
    const stats = [...document.querySelectorAll('.stats > div:not([hidden])')].map(R);
    for (let i = 0; i < stats.length; i++) for (let j = i + 1; j < stats.length; j++) if (hit(stats[i], stats[j])) out.push('header items overlap');
    const svg = document.querySelector('#scrub-card .tl-svg');
    if (svg && R(svg).right > R(document.querySelector('#scrub-card')).right + 1) out.push('the timeline leaves its card');
    return out;
  });
}

describe('the dashboard as a fault lab (real processes)', { timeout: 240000 }, () => {
  let first;      // the first primary
  let second;     // the one elected after it was killed
  let frozen;     // the backup that was SIGSTOPped

  before(async () => {
    await coord.start();
    browser = await launchBrowser();
    page = await openDashboard(browser, `${coord.url}/`, { width: 1280, height: 800 });
  });

  after(() => teardown(browser, coord));

  it('shows a request sent by another client (curl) in the request list', async () => {
    const data = `curl-${Date.now() % 100000}`;
    const res = await post('/api/requests', { data, id: `curl-${data}` });
    assert.equal(res.status, 201);
    const chip = `#requests li[data-request-id="curl-${data}"]`;
    await waitFor('the curl request as a committed chip', async () => (await page.getAttribute(chip, 'data-state').catch(() => null)) === 'committed');
    const text = await page.textContent(chip);
    assert.match(text, new RegExp(data));
    assert.match(text, new RegExp(`#${res.body.index}`));
  });

  it('counts a frozen (SIGSTOPped) replica as not up, and shows the majority', async () => {
    await waitFor('majority with 3', async () => /needs 2 of 3 — has 3/.test(await page.textContent('#stat-majority')));
    const c = await getJson(`${coord.url}/api/cluster`);
    const backup = c.replicas.find((r) => r.id !== c.primary).id;
    frozen = backup;
    const pid = coord.replicaPid(backup);
    assert.ok(pid, `pid of ${backup}`);
    // Its details first, while it answers.
    await page.click(`${node(backup)} .body`);
    await waitFor('its synced list', async () => /^\d/.test(await page.textContent('#details [data-k="scount"]')));
    // A backup tracks no match index and hears only from the primary: no "0 / never".
    const peers = await waitFor('its peers', async () => {
      const rows = await page.$$eval('#details [data-k="peers"] tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
      return rows.length === 2 ? rows : null;
    });
    for (const row of peers) {
      assert.equal(row[3], '—', `match of ${row[0]}`);
      assert.notEqual(row[4], 'never', `last seen of ${row[0]}`);
    }
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor('"2/3 up · 1 frozen"', async () => /^2\/3 up · 1 frozen$/.test(await page.textContent('#stat-replicas')), { timeoutMs: 10000 });
      assert.match(await page.textContent('#stat-majority'), /needs 2 of 3 — has 2/);
      await waitFor('the frozen circle labelled', async () => /frozen/.test(await page.getAttribute(node(backup), 'data-incident') || ''));
      // The details say what is known and from when, and the tiles agree with the lists.
      await waitFor('the details note', () => page.isVisible('#details [data-k="known"]'));
      assert.match(await page.textContent('#details [data-k="known"]'), new RegExp(`${backup} is backup, frozen since .*what it reported last, at`));
      for (const [tile, count] of [['synced', 'scount'], ['processed', 'pcount']]) {
        const t = await page.textContent(`#details dd[data-k="${tile}"]`);
        const c = await page.textContent(`#details [data-k="${count}"]`);
        assert.equal(t, c.replace(/^\d+ of /, ''), `${tile}: tile ${t}, list ${c}`);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await page.click('#details button[aria-label="Close details"]');
    await waitFor('3/3 up again', async () => (await page.textContent('#stat-replicas')) === '3/3 up', { timeoutMs: 10000 });
  });

  it('keeps a killed primary red, labelled "primary, killed", until it is back', async () => {
    const c = await getJson(`${coord.url}/api/cluster`);
    first = c.primary;
    await sleep(1200);   // a stretch of "first is primary" on the timeline to scrub back to
    const pid = coord.replicaPid(first);
    assert.ok(pid);
    const sel = node(first);
    // Every state its circle goes through (the red stretch lasts under a second: the
    // supervisor restarts it), recorded in the page so no poll can miss it.
    await page.$eval(sel, (g) => {
      window.__seen = [];
      new MutationObserver(() => window.__seen.push([g.dataset.incident, getComputedStyle(g.querySelector('.body')).fill,
        g.querySelector('.label-name').textContent])).observe(g, { attributes: true, subtree: true, childList: true, characterData: true });
    });
    process.kill(pid, 'SIGKILL');
    const seen = await waitFor('the killed primary red and labelled', () => page.evaluate(() => {
      const hit = window.__seen.find(([inc, fill]) => inc === 'primary, killed' && fill === 'rgb(185, 28, 28)');
      return hit ? hit[2] : null;
    }), { timeoutMs: 10000 });
    assert.match(seen, /primary, killed/);
    const c2 = await coord.waitForPrimary();
    second = c2.primary;
    assert.notEqual(second, first);
    // The supervisor restarts it within a second: it is shown as having been killed for a while longer.
    await waitFor(`${first} up again`, async () => (await getJson(`${coord.url}/api/cluster`)).replicas.some((r) => r.id === first && r.status === 'up' && r.answering !== false));
    assert.ok(/killed/.test(await page.getAttribute(sel, 'data-incident') || ''), 'still marked just after it is back');
    await waitFor('"was killed" once back', async () => /was killed · back in/.test(await page.textContent(`${sel} .label-meta`)));
    await screenshot(page, 'lab-killed-1280x800');
    // The timeline keeps the red band, labelled in its tooltip.
    const bands = await page.$$eval(`#scrub-card g.lane[data-id="${first}"] g.band.cls-failed title`, (ts) => ts.map((t) => t.textContent));
    assert.ok(bands.some((t) => /primary, killed/.test(t)), `red band for ${first}: ${bands.join(' | ')}`);
    await waitFor('the failover time in the header', async () => /\d/.test(await page.textContent('#stat-failover')));
  });

  it('keeps the events and the last failover across a reload', async () => {
    const failover = await page.textContent('#stat-failover');
    const events = await page.$$eval('#timeline li', (ls) => ls.length);
    await page.reload();
    await waitFor('live after the reload', async () => (await page.getAttribute('#conn', 'data-state')) === 'live');
    await waitFor('the failover back', async () => (await page.textContent('#stat-failover')) === failover);
    const after = await page.$$eval('#timeline li', (ls) => ls.map((l) => l.textContent));
    assert.ok(after.length >= Math.min(events, 10), `events after reload: ${after.length} (before ${events})`);
    assert.ok(after.some((t) => /elected primary/.test(t) && /failover/.test(t)), 'the failover event is listed');
    assert.ok(after.some((t) => /curl-/.test(t)), 'the curl request is listed');
    const red = await page.$$(`#scrub-card g.lane[data-id="${first}"] g.band.cls-failed`);
    assert.ok(red.length > 0, 'the red band survives the reload');
    const frozenBands = await page.$$eval(`#scrub-card g.lane[data-id="${frozen}"] g.band.cls-failed title`, (ts) => ts.map((t) => t.textContent));
    assert.ok(frozenBands.some((t) => /frozen/.test(t)), `the frozen stretch of ${frozen} after the reload: ${frozenBands.join(' | ')}`);
  });

  it('scrubs back to before the failover: the ring shows the earlier primary', async () => {
    await page.$eval('#scrub-card', (e) => e.scrollIntoView({ block: 'end' }));
    const box = await page.$eval(`#scrub-card g.lane[data-id="${first}"] g.band.cls-primary rect`, (r) => {
      const b = r.getBoundingClientRect();
      return { x: b.left + b.width / 2, y: b.top + b.height / 2, w: b.width };
    });
    assert.ok(box.w > 2, 'a primary band for the first primary');
    await page.mouse.click(box.x, box.y);
    await waitFor('the past banner', async () => !(await page.$eval('#past-banner', (b) => b.hidden)));
    await waitFor(`${first} primary on the ring`, async () => (await page.getAttribute(node(first), 'data-primary')) === 'true');
    assert.equal(await page.getAttribute(node(second), 'data-primary'), null);
    assert.match(await page.textContent('#stat-primary'), new RegExp(first));
    await screenshot(page, 'lab-scrubbed-1280x800');
    await page.click('#scrub-card .tl-live');
    await waitFor(`${second} primary again (live)`, async () => (await page.getAttribute(node(second), 'data-primary')) === 'true');
    assert.ok(await page.$eval('#past-banner', (b) => b.hidden));
  });

  it('fault lab: controls, or a clear note when the coordinator has no fault API', async () => {
    const res = await fetch(`${coord.url}/api/faults`);
    await waitFor('fault lab state known', async () => (await page.getAttribute('#lab-card', 'data-available')) !== null);
    const note = await page.$eval('#lab-unavailable', (e) => (e.hidden ? '' : e.textContent));
    if (res.status === 404) {
      assert.match(note, /not available on this coordinator/);
      assert.ok(await page.$eval('#lab-pause button[type=submit]', (b) => b.disabled));
    } else {
      assert.equal(note, '');
      assert.ok(!(await page.$eval('#lab-pause button[type=submit]', (b) => b.disabled)));
    }
  });

  for (const [w, h] of [[1024, 768], [1280, 800], [1920, 1080]]) {
    it(`lays out at ${w}x${h} with nothing cut off or overlapping`, async () => {
      await page.setViewportSize({ width: w, height: h });
      await page.evaluate(() => window.scrollTo(0, 0));
      await sleep(900);
      const problems = [...await layoutProblems(page), ...await pageProblems()];
      await screenshot(page, `lab-${w}x${h}`);
      await screenshot(page, `lab-${w}x${h}-full`, { fullPage: true });
      assert.deepEqual(problems, []);
    });
  }

  it('has no console errors', () => {
    assert.deepEqual(pageErrors(page), []);
    assert.deepEqual(page.external, []);
  });
});

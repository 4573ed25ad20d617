// Shared by the browser tests: start/stop a real coordinator (which spawns and
// supervises 3 local replicas), launch Debian's chromium through playwright-core,
// poll for conditions, and save artifacts (screenshots, coordinator logs).
//
// Environment:
//   COORDINATOR_BIN  coordinator binary (default build/coordinator/coordinator)
//   ARTIFACTS_DIR    where screenshots and logs go (default build/artifacts)
//   CHROMIUM_BIN     browser (default /usr/bin/chromium)
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DASHBOARD_DIR = path.join(ROOT, 'dashboard');
const COORDINATOR_BIN = process.env.COORDINATOR_BIN || path.join(ROOT, 'build', 'coordinator', 'coordinator');
const ARTIFACTS_DIR = process.env.ARTIFACTS_DIR || path.join(ROOT, 'build', 'artifacts');
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

const { chromium } = require(path.join(DASHBOARD_DIR, 'node_modules', 'playwright-core'));

fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Poll `fn` until it returns a truthy value; throw with `what` after `timeoutMs`. */
async function waitFor(what, fn, { timeoutMs = 30000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (last instanceof Error ? ` (last error: ${last.message})` : ` (last value: ${JSON.stringify(last)})`));
    }
    await sleep(intervalMs);
  }
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/* A free loopback port for the HTTP listener and a run of `n` free ports for the
 * spawned replicas. They stay fixed across restarts (of a replica, or of the
 * coordinator in the reconnect test), so they must lie below the kernel's
 * ephemeral range, where any outgoing connection could take one meanwhile. */
function ephemeralLow() {
  try {
    const [lo] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo > 12000) return lo;
  } catch (_) { /* not Linux: assume the default */ }
  return 32768;
}

async function pickPorts(n) {
  const span = 16, lo = 10000, slots = Math.floor((ephemeralLow() - lo) / span);
  for (let tries = 0; tries < 200; tries++) {
    const base = lo + Math.floor(Math.random() * slots) * span;
    const ports = [base, ...Array.from({ length: n }, (_, i) => base + 1 + i)];
    let ok = true;
    for (const p of ports) if (!(await portFree(p))) { ok = false; break; }
    if (ok) return { http: base, replicaBase: base + 1 };
  }
  throw new Error('no free port range found');
}

async function httpOk(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.ok;
  } catch (_) {
    return false;
  }
}

/* GET and parse JSON. A GET is safe to repeat: a network error (a pooled
 * keep-alive connection the server closed just as it was reused) is retried
 * once, and the cause is kept in the message. `token`: the API token, sent
 * as Authorization: Bearer. */
async function getJson(url, { token = null } = {}) {
  const opts = () => ({ signal: AbortSignal.timeout(5000),
    headers: token ? { Authorization: `Bearer ${token}` } : {} });
  let res;
  try {
    res = await fetch(url, opts());
  } catch (e) {
    const why = e.cause ? `${e.cause.code || ''} ${e.cause.message || e.cause}`.trim() : e.message;
    console.error(`# getJson ${url}: ${e.message} (${why}); retrying once`);
    res = await fetch(url, opts());
  }
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

/* Start `coordinator --spawn N`; resolves once it serves /healthz and the cluster
 * has a primary. The coordinator runs in its own process group so that stop()
 * can also reach the replicas it spawned if it has to be killed hard. */
class Coordinator {
  /* extraArgs: more coordinator flags; token: the API token its own calls
   * send (with --api-token-file among extraArgs). */
  constructor(name, { spawnCount = 3, sparePorts = 0, extraArgs = [], token = null } = {}) {
    this.name = name;
    this.spawnCount = spawnCount;
    this.extraArgs = extraArgs;
    this.token = token;
    this.sparePorts = sparePorts;   // free ports after the spawned ones, for replicas added later
    this.proc = null;
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `replicacao-browser-${name}-`));
    this.logPath = path.join(ARTIFACTS_DIR, `${name}-coordinator.log`);
    fs.writeFileSync(this.logPath, '');
  }

  get url() { return `http://127.0.0.1:${this.ports.http}`; }

  async start() {
    if (!fs.existsSync(COORDINATOR_BIN)) throw new Error(`coordinator binary not found at ${COORDINATOR_BIN} (set COORDINATOR_BIN)`);
    if (!this.ports) this.ports = await pickPorts(this.spawnCount + this.sparePorts);
    const args = [
      '--listen', `127.0.0.1:${this.ports.http}`,
      '--spawn', String(this.spawnCount),
      '--spawn-base-port', String(this.ports.replicaBase),
      '--data-dir', this.dataDir,
      '--dashboard-dir', DASHBOARD_DIR,
      ...this.extraArgs,
    ];
    const log = fs.openSync(this.logPath, 'a');
    fs.writeSync(log, `\n=== ${new Date().toISOString()} ${COORDINATOR_BIN} ${args.join(' ')}\n`);
    this.proc = spawn(COORDINATOR_BIN, args, { stdio: ['ignore', log, log], detached: true });
    fs.closeSync(log);
    const proc = this.proc;
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    proc.once('exit', () => { if (this.proc === proc) this.proc = null; });
    await waitFor(`${this.name} coordinator /healthz`, async () => {
      if (!this.proc) throw new Error(`coordinator exited early; see ${this.logPath}`);
      return httpOk(`${this.url}/healthz`);
    }, { timeoutMs: 20000 });
    await this.waitForPrimary();
    return this;
  }

  async waitForPrimary(timeoutMs = 30000) {
    return waitFor(`${this.name}: a primary`, async () => {
      const c = await getJson(`${this.url}/api/cluster`, { token: this.token });
      return c.primary && c.replicas.some((r) => r.id === c.primary && r.status === 'up') ? c : null;
    }, { timeoutMs });
  }

  /* The pid of replica `id` this coordinator spawned (its command line names the
   * coordinator as --parent-pid), or null. */
  replicaPid(id) {
    const parent = String(this.proc.pid);
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      let argv;
      try { argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0'); } catch (_) { continue; }
      const at = (flag) => argv[argv.indexOf(flag) + 1];
      if (argv.includes('--parent-pid') && at('--parent-pid') === parent && at('--id') === id) return Number(d);
    }
    return null;
  }

  /* SIGTERM, then SIGKILL (to the whole process group) after `graceMs`. */
  async stop(graceMs = 5000) {
    const proc = this.proc;
    if (!proc) return;
    const pid = proc.pid;
    try { process.kill(pid, 'SIGTERM'); } catch (_) { /* already gone */ }
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      try { process.kill(-pid, 'SIGKILL'); } catch (_) { /* gone */ }
      await Promise.race([this.exited, sleep(2000)]);
    }
    // Replicas it spawned must not outlive it (they share its process group).
    try { process.kill(-pid, 'SIGKILL'); } catch (_) { /* none left: the normal case */ }
    this.proc = null;
  }

  cleanup() {
    try { fs.rmSync(this.dataDir, { recursive: true, force: true }); } catch (_) { /* best effort */ }
  }

  /* Synchronous last resort for process.on('exit'). */
  killNow() {
    if (!this.proc) return;
    try { process.kill(-this.proc.pid, 'SIGKILL'); } catch (_) { /* gone */ }
  }
}

const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM_BIN, args: BROWSER_ARGS });
}

/* A page that records console errors and uncaught exceptions, for assertions. */
async function openDashboard(browser, url, viewport = { width: 1280, height: 800 }, { beforeGoto } = {}) {
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(20000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`console: ${m.text()}`); });
  // The dashboard must work offline: any request that leaves the coordinator fails the test.
  page.external = [];
  await page.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.host !== new URL(url).host) { page.external.push(u.href); return route.abort(); }
    return route.continue();
  });
  // A coordinator without the fault lab answers 404 to /api/faults, which the
  // dashboard asks for and reports on the page; Chromium logs each such 404 as a
  // console error without its URL, so they are counted to be told apart.
  page.faultApi404 = 0;
  // Likewise a read of a replica that is down at that moment (a details panel
  // refetching while it is replaced) is answered 503 unreachable, as the API says.
  page.read503 = 0;
  page.on('response', (r) => {
    if (r.status() === 404 && /^\/api\/(faults|timing)/.test(new URL(r.url()).pathname)) page.faultApi404 += 1;
    if (r.status() === 503 && r.request().method() === 'GET' && /^\/api\/(replicas\/[^/]+|requests)$/.test(new URL(r.url()).pathname)) page.read503 += 1;
  });
  if (beforeGoto) await beforeGoto(page);
  await page.goto(url);
  return page;
}

/* The end of a suite against a real coordinator: the browser, then the
 * coordinator and its replicas, then its data. */
async function teardown(browser, coord) {
  try {
    if (browser) await browser.close();
  } finally {
    await coord.stop();
    coord.cleanup();
  }
}

/* page.errors without the console lines of the fault API's 404s and of 503 reads (see above). */
function pageErrors(page) {
  let allowed = page.faultApi404, reads = page.read503;
  return page.errors.filter((e) => {
    if (allowed > 0 && /status of 404/.test(e)) { allowed -= 1; return false; }
    if (reads > 0 && /status of 503/.test(e)) { reads -= 1; return false; }
    return true;
  });
}

/* What overlaps or is cut off in the dashboard as shown: circles and their two
 * label lines (none may overlap another, leave the drawing or hide under the
 * legend), the configuration summary, the table and the panels (no horizontal
 * overflow), and the page (no horizontal scroll). [] when all is well. */
async function layoutProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const R = (e) => e.getBoundingClientRect();
    const hit = (a, b, tol = 1) => a.left < b.right - tol && b.left < a.right - tol && a.top < b.bottom - tol && b.top < a.bottom - tol;
    const inside = (a, b, tol = 1) => a.left >= b.left - tol && a.right <= b.right + tol && a.top >= b.top - tol && a.bottom <= b.bottom + tol;
    const wrap = R(document.querySelector('#cluster-wrap'));
    const legend = R(document.querySelector('.legend'));
    const items = [];
    for (const g of document.querySelectorAll('#cluster-svg g.node:not(.exiting)')) {
      const id = g.dataset.id;
      items.push({ what: `${id} circle`, r: R(g.querySelector('.body')) });
      for (const k of ['label-name', 'label-meta']) items.push({ what: `${id} ${k}`, r: R(g.querySelector(`.${k}`)) });
    }
    for (let i = 0; i < items.length; i++) {
      const a = items[i];
      if (!inside(a.r, wrap)) problems.push(`${a.what} leaves the drawing`);
      if (hit(a.r, legend)) problems.push(`${a.what} overlaps the legend`);
      for (let j = i + 1; j < items.length; j++) {
        if (hit(a.r, items[j].r)) problems.push(`${a.what} overlaps ${items[j].what}`);
      }
    }
    if (!inside(legend, R(document.querySelector('.cluster-card')))) problems.push('the legend leaves its card');
    const de = document.documentElement;
    if (de.scrollWidth > de.clientWidth) problems.push(`horizontal scroll (${de.scrollWidth} > ${de.clientWidth})`);
    for (const sel of ['#config-summary', '.table-scroll', '.topbar', '#details', '.controls']) {
      const e = document.querySelector(sel);
      if (e && e.scrollWidth > e.clientWidth + 1) problems.push(`${sel} is cut off (${e.scrollWidth} > ${e.clientWidth})`);
    }
    const cs = R(document.querySelector('#config-summary'));
    if (!inside(cs, R(document.querySelector('.cluster-card')))) problems.push('the summary leaves its card');
    if (hit(cs, wrap)) problems.push('the summary overlaps the drawing');
    return problems;
  });
}

async function screenshot(page, name, opts = {}) {
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, ...opts });
  return file;
}

module.exports = {
  ARTIFACTS_DIR, COORDINATOR_BIN, DASHBOARD_DIR, Coordinator, getJson, launchBrowser,
  layoutProblems, openDashboard, pageErrors, screenshot, sleep, teardown, waitFor,
};

// A scripted stand-in for the coordinator, for tests of the dashboard's layout
// and of API contract fields a given coordinator build may not send yet.
//
// It serves the dashboard's files the way the coordinator does (/ -> index.html,
// /vendor/d3.min.js from node_modules) and answers the API from a cluster
// snapshot the test sets; /api/ws is mocked in the page through Playwright's
// routeWebSocket, so the test decides every "cluster" and "event" message.
// Calls that change things (DELETE /api/replicas/{id}, POST /api/replicas, ...)
// go to `onCall`, which the test sets; every call is recorded in `calls`.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { DASHBOARD_DIR } = require('./harness');

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

class FakeCoordinator {
  constructor() {
    this.cluster = { epoch: 0, primary: null, commit_index: 0, replicas: [] };
    this.sockets = [];
    this.calls = [];
    this.onCall = null;   // (method, path, body) => {status, body} | null (null: 404)
  }

  get url() { return `http://127.0.0.1:${this.server.address().port}`; }

  async start() {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop() {
    for (const ws of this.sockets) { try { ws.close(); } catch (_) { /* gone */ } }
    if (this.server) await new Promise((resolve) => this.server.close(resolve));
  }

  /* Route the page's /api/ws to this fake; call before page.goto. */
  async attach(page) {
    await page.routeWebSocket(/\/api\/ws$/, (ws) => {
      this.sockets.push(ws);
      ws.onClose(() => { this.sockets = this.sockets.filter((s) => s !== ws); });
      ws.send(JSON.stringify({ type: 'cluster', cluster: this.cluster }));
    });
  }

  setCluster(c) {
    this.cluster = c;
    this.broadcast({ type: 'cluster', cluster: c });
  }

  event(ev) {
    this.broadcast({ type: 'event', event: { time_ms: Date.now(), epoch: this.cluster.epoch, index: 0, detail: '', ...ev } });
  }

  broadcast(msg) {
    const text = JSON.stringify(msg);
    for (const ws of this.sockets) ws.send(text);
  }

  send(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(text);
  }

  handle(req, res) {
    const u = new URL(req.url, 'http://x');
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      if (u.pathname.startsWith('/api/')) return this.api(req.method, u, body, res);
      let file = u.pathname === '/' ? '/index.html' : u.pathname;
      file = file === '/vendor/d3.min.js'
        ? path.join(DASHBOARD_DIR, 'node_modules', 'd3', 'dist', 'd3.min.js')
        : path.join(DASHBOARD_DIR, path.normalize(file).replace(/^(\.\.[/\\])+/, ''));
      if (file.includes('node_modules') && !file.endsWith('d3.min.js')) return this.send(res, 404, { error: { code: 'not_found' } });
      fs.readFile(file, (err, data) => {
        if (err) return this.send(res, 404, { error: { code: 'not_found', message: 'no such file' } });
        res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream' });
        res.end(data);
      });
    });
  }

  api(method, u, body, res) {
    this.calls.push({ method, path: u.pathname + u.search, body });
    const c = this.cluster;
    if (method === 'GET' && u.pathname === '/api/cluster') return this.send(res, 200, c);
    if (method === 'GET' && u.pathname === '/api/requests') return this.send(res, 200, { commit_index: c.commit_index, entries: [] });
    const m = /^\/api\/replicas\/([^/]+)$/.exec(u.pathname);
    if (method === 'GET' && m) {
      const r = c.replicas.find((x) => x.id === decodeURIComponent(m[1]));
      if (!r) return this.send(res, 404, { error: { code: 'not_found', message: 'no replica with that id' } });
      const others = c.replicas.filter((x) => x.id !== r.id);
      return this.send(res, 200, {
        ...r,
        processed_data: { entries: [], total: 0 },
        synced_data: { entries: [], total: 0 },
        peers: others.map((p) => ({ id: p.id, address: p.address, voter: p.voter !== false, connected: p.status === 'up', match_index: p.commit_index, last_seen_ms: 20 })),
      });
    }
    const out = this.onCall ? this.onCall(method, u.pathname + u.search, body) : null;
    if (out) return this.send(res, out.status, out.body);
    return this.send(res, 404, { error: { code: 'not_found', message: 'no such API endpoint' } });
  }
}

/* A snapshot in the coordinator's shape. `specs`: one per replica,
 * {role, status, member, voter, name, lag}; defaults: an up voting backup.
 * The first replica with role "primary" (and status up) is the primary.
 * `membership: false` leaves out the second-wave fields (an older coordinator). */
function makeCluster(specs, { epoch = 4, commit = 120, membership = true, spawn = true, names } = {}) {
  const replicas = specs.map((s, i) => {
    const id = s.id || `r${i + 1}`;
    const role = s.role || 'backup';
    const status = s.status || 'up';
    const voter = s.voter !== undefined ? s.voter : !(role === 'learner' || role === 'removed');
    const member = s.member !== undefined ? s.member : role !== 'removed';
    const ci = s.commit !== undefined ? s.commit : role === 'learner' ? Math.round(commit * 0.4) : status === 'up' ? commit : commit - 17;
    const r = {
      id, name: s.name || (names ? names(i) : id), address: `127.0.0.1:${10401 + i}`, role, status,
      epoch: status === 'up' ? epoch : epoch - 1, last_index: ci, commit_index: ci, lag: Math.max(0, commit - ci),
      heartbeat_age_ms: status === 'up' ? 12 + i : 4200, processed: role === 'primary' ? 40 : 0, synced: ci,
      voter, believes_primary: '', uptime_ms: 60000 + i * 1000, peers: [],
    };
    if (membership) r.member = member;
    return r;
  });
  const prim = replicas.find((r) => r.role === 'primary' && r.status === 'up');
  for (const r of replicas) if (r.status === 'up') r.believes_primary = prim ? prim.id : '';
  const c = { epoch, primary: prim ? prim.id : null, commit_index: commit, replicas };
  if (membership) {
    const voters = replicas.filter((r) => r.member && r.voter).map((r) => r.id);
    c.cluster_id = '7f3c2a91-5b0e-4d8a-9c11-2e6f0b4d7a55';
    c.voters = voters;
    c.learners = replicas.filter((r) => r.member && !r.voter).map((r) => r.id);
    c.quorum = Math.floor(voters.length / 2) + 1;
    c.reachable_voters = replicas.filter((r) => r.member && r.voter && r.status === 'up').length;
    c.config_index = 9;
    c.spawn = spawn;
  }
  return c;
}

module.exports = { FakeCoordinator, makeCluster };

/* replicacao dashboard.
 *
 * Live view of the cluster served by the coordinator. State comes from the
 * WebSocket /api/ws (a full "cluster" snapshot on connect and on every change,
 * plus "event" messages); the HTTP API is used for actions (requests, fail) and
 * for one replica's data lists in the details panel. No polling loop.
 *
 * Sections: utilities · HTTP · cluster view (D3) · table · details panel ·
 * requests · timeline · WebSocket · boot.
 *
 * The recorded past lives in history.js (what happened, and the cluster at
 * any moment), the scrubbable timeline in timeline.js and the fault lab's
 * controls in faults.js; this file renders the present (or, while the
 * timeline is scrubbed back, the past it is given).
 */
(function () {
  'use strict';

  if (!window.d3) {
    const p = document.getElementById('cluster-empty');
    p.hidden = false;
    p.textContent = 'Could not load /vendor/d3.min.js from the coordinator (is dashboard/node_modules installed? run npm ci in dashboard/).';
    return;
  }

  const CFG = {
    timelineMax: 200,      // events kept in the timeline
    chipsMax: 8,           // recent requests shown
    detailsLimit: 200,     // entries fetched per data list
    detailsMinGapMs: 250,  // details refetch throttle
    pulseGapMs: 180,       // at most one burst of replication pulses per this
    backoffBaseMs: 500,
    backoffMaxMs: 8000,
    requestTimeoutMs: 60000,
  };

  const H = window.ReplHistory;
  const ROLE_GLYPH = { primary: 'P', backup: 'B', candidate: 'C', learner: 'L', removed: '−' };

  const state = {
    cluster: null,          // last snapshot
    prev: null,             // previous snapshot (for diff effects)
    selected: null,         // replica id in the details panel
    detail: null,           // last GET /api/replicas/{id} answer for `selected`
    detailSig: '',          // snapshot signature the detail was fetched for
    seq: 0,                 // highest data-N seen, for auto-numbering
    connected: false,
    everConnected: false,
    names: new Map(),       // id -> display name, kept after a replica leaves (for the timeline)
    removing: new Map(),    // id -> time a DELETE was accepted (until it leaves the configuration)
    confirming: null,       // replica id whose "Remove" confirmation is open
    actionError: null,      // {id, text}: the last refused action, shown in the details panel
    adding: new Set(),      // ids POST /api/replicas started, announced when they become voters
    removedIds: new Set(),  // ids seen leaving the configuration (a remove from here, or a "removed" event)
    live: null,             // the newest live snapshot (state.cluster is a recorded one while scrubbing)
    past: null,             // the time the timeline is scrubbed to; null: live
    faults: [],             // active faults (GET /api/faults or the WebSocket), for the ring and the timeline
    replaying: false,       // replaying the history on connect: no bursts, toasts or announcements
  };

  // ================================================================ utilities

  const $ = (sel) => document.querySelector(sel);

  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : v);
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const byId = (a, b) => String(a.id).localeCompare(String(b.id), undefined, { numeric: true });
  const num = (v) => (typeof v === 'number' && isFinite(v) ? v : null);
  const show = (v, dflt = '–') => (v === null || v === undefined || v === '' ? dflt : String(v));

  function fmtClock(ms) {
    const d = ms ? new Date(ms) : new Date();
    const p = (n, w = 2) => String(n).padStart(w, '0');
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }

  function fmtDuration(ms) {
    ms = num(ms);
    if (ms === null || ms < 0) return '–';   // -1: never heard of / unknown
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
    const hr = Math.floor(m / 60);
    return `${hr}h ${String(m % 60).padStart(2, '0')}m`;
  }

  function replicaName(id) {
    const r = state.cluster && state.cluster.replicas.find((x) => x.id === id);
    return (r && r.name) || state.names.get(id) || id;
  }

  /* Circle labels have room for a short name: the host part, at most 16 characters,
   * shortened in the middle (the full name is in the tooltip, the aria label and the table). */
  function hostPart(r) {
    const n = String(r.name || r.id);
    return /^\d+\.\d+\.\d+\.\d+$/.test(n) ? n : n.split('.')[0] || n;
  }

  /* How many leading characters every name shares that a circle label can drop,
   * keeping one word: "replicacao-replica-1", "-2", ... are labelled "replica-1", "-2". */
  function commonStrip(replicas) {
    if (replicas.length < 2) return 0;
    const hosts = replicas.map(hostPart);
    let p = hosts[0];
    for (const x of hosts) { let i = 0; while (i < p.length && i < x.length && p[i] === x[i]) i++; p = p.slice(0, i); }
    const seps = [...p.matchAll(/[-_.]/g)].map((mm) => mm.index);
    // cut after the separator before the last one (one shared word stays)
    return seps.length >= 2 ? seps[seps.length - 2] + 1 : 0;
  }

  function shortName(r, cap = 16, strip = 0) {
    const host = hostPart(r).slice(strip);
    if (host.length <= cap) return host;
    const head = Math.max(2, Math.floor((cap - 1) * 0.4));
    return `${host.slice(0, head)}…${host.slice(-(cap - 1 - head))}`;   // the end tells replicas apart (…replica-3)
  }

  function isUp(r) { return r && r.status === 'up'; }
  /* Up and answering its status polls: a frozen (SIGSTOPped) replica keeps its
   * connection open ("up") but answers nothing. */
  function isAnswering(r) { return isUp(r) && (r.answering !== false || r.status_age_ms === -1); }   // -1: just connected, not asked yet

  /* The failure to show on a replica: while scrubbed back, what the recorded past
   * says; live, the latest failure while it lasts and a few seconds after it ends
   * (so that a replica the supervisor restarts in 300 ms is still seen to have
   * failed). {what, role, since, back} or null. */
  function incidentOf(r) {
    if (!r) return null;
    if (state.past !== null) return r.what ? { what: r.what, role: r.wasRole || r.role, since: null, back: null } : null;
    return H ? H.incidentShown(r.id) : null;
  }
  /* A replica paused by the fault lab: its pause fault, and how long it has left
   * (the replica's own paused_ms, else the fault's expiry). */
  function pausedFault(id) {
    const f = state.faults.find((x) => x.kind === 'pause' && x.replica === id) || null;
    const r = state.live && state.live.replicas.find((x) => x.id === id);
    const left = r && num(r.paused_ms) > 0 ? num(r.paused_ms) : f && num(f.expires_in_ms);
    if (!f && !(r && num(r.paused_ms) > 0)) return null;
    return { ms: f ? f.ms : null, left };
  }
  function incidentText(i) { return `${i.role || 'replica'}, ${i.what}`; }
  /* Its log cannot be written (a full disk): it takes no writes until space returns. */
  function diskFull(r) { return !!(r && r.storage && r.storage.disk && r.storage.disk !== 'ok'); }
  function fmtBytes(n) {
    const v = num(n);
    if (v === null) return '—';
    if (v >= 1 << 30) return `${(v / (1 << 30)).toFixed(1)} GiB`;
    if (v >= 1 << 20) return `${(v / (1 << 20)).toFixed(1)} MiB`;
    if (v >= 1 << 10) return `${(v / (1 << 10)).toFixed(0)} KiB`;
    return `${v} B`;
  }
  function isPrimary(r) { return r && state.cluster && r.id === state.cluster.primary && isUp(r); }

  /* What a replica's circle says, in words: used for labels and aria. */
  function roleText(r) {
    const inc = incidentOf(r);
    if (inc && !inc.back && !r.start_failed) return `${incidentText(inc)}${inc.since ? ` since ${fmtClock(inc.since)}` : ''}`;
    if (r.status === 'failed') return r.start_failed ? 'failed, given up: it kept crashing at start' : 'failed';
    const kind = memberKind(r);
    let w = r.role || 'unknown';
    if (kind === 'learner') w = `${w}, non-voting`;
    else if (kind === 'joining') w = `${w}, joining (not in the configuration yet)`;
    else if (kind === 'removed') w = 'removed from the configuration';
    else if (kind === 'outside') w = `${w}, not a member`;
    if (r.status === 'down') w += ', down';
    if (diskFull(r)) w += ', disk full: takes no writes';
    return w;
  }

  /* Visibly behind: a learner, or a backup more than a couple of entries short
   * (one or two behind is normal while requests flow and must not flicker). */
  function catchingUp(r, c) {
    if (!isUp(r) || !c || r.role === 'primary' || r.role === 'candidate' || r.role === 'removed') return false;
    if (outsider(memberKind(r))) return false;
    const ci = num(r.commit_index), cc = num(c.commit_index);
    if (r.role === 'learner') return true;
    return ci !== null && cc !== null && cc - ci >= 3;
  }

  function progressOf(r, c) {
    const ci = num(r.commit_index) || 0, cc = num(c && c.commit_index) || 0;
    if (cc <= 0) return 1;
    return Math.max(0, Math.min(1, ci / cc));
  }

  function splitView(r, c) {
    return isUp(r) && c && r.believes_primary !== undefined &&
      (r.believes_primary || null) !== (c.primary || null);
  }

  // ---------------------------------------------------------------- membership

  /* The configuration: as the coordinator reports it ("voters", "learners",
   * "quorum", "reachable_voters"), or, from an older coordinator without those
   * fields, as far as the replica list tells (every listed replica is then a
   * member; "voter": false or the learner role makes it a non-voter). */
  let memo = { c: null, m: null };
  function membership(c) {
    if (!c) return null;
    if (memo.c === c) return memo.m;
    memo = { c, m: computeMembership(c) };
    return memo.m;
  }

  function computeMembership(c) {
    const reps = c.replicas || [];
    const byRid = new Map(reps.map((r) => [r.id, r]));
    const reported = Array.isArray(c.voters);
    let voters, learners;
    if (reported) {
      voters = c.voters.map(String);
      learners = Array.isArray(c.learners) ? c.learners.map(String) : [];
    } else {
      const members = reps.filter((r) => r.role !== 'removed' && r.member !== false);
      voters = members.filter((r) => r.voter !== false && r.role !== 'learner').map((r) => r.id);
      learners = members.filter((r) => r.voter === false || r.role === 'learner').map((r) => r.id);
    }
    const quorum = num(c.quorum) !== null ? c.quorum : Math.floor(voters.length / 2) + 1;
    const reachable = num(c.reachable_voters) !== null
      ? c.reachable_voters : voters.filter((id) => isUp(byRid.get(id))).length;
    return {
      reported, voters, learners, quorum, reachable,
      known: reported && voters.length > 0,   // a configuration is in force (not still forming)
      voterSet: new Set(voters), learnerSet: new Set(learners),
      ok: voters.length > 0 && reachable >= quorum,
      spawn: c.spawn === true,
      configIndex: num(c.config_index),
      clusterId: typeof c.cluster_id === 'string' && c.cluster_id ? c.cluster_id : null,
    };
  }

  /* Whether the coordinator offers the membership calls (DELETE /api/replicas/{id}). */
  function canRemove() {
    const m = state.cluster && membership(state.cluster);
    return !!(m && m.reported);
  }

  /* A replica's place in the configuration:
   *   voter    member that votes
   *   learner  member that does not vote (yet): catching up, or kept non-voting
   *   joining  not (yet) in the configuration: a learner about to be added, a new replica
   *   outside  no member and not joining either (a --spawn replica given up before it joined)
   *   removed  removed from the configuration (role "removed")
   */
  function memberKind(r, m) {
    if (!r) return 'removed';
    if (r.role === 'removed') return 'removed';
    m = m || membership(state.cluster);
    let member;
    if (m && m.reported && !m.known) member = true;   // still forming: nobody is a member yet, nobody an outsider
    else if (typeof r.member === 'boolean') member = r.member;
    else if (m && m.reported) member = m.voterSet.has(r.id) || m.learnerSet.has(r.id);
    else member = true;
    if (!member) return r.role === 'learner' || r.status === 'up' ? 'joining' : 'outside';
    if (m && m.known) {
      if (m.voterSet.has(r.id)) return 'voter';
      if (m.learnerSet.has(r.id)) return 'learner';
    }
    return r.voter === false || r.role === 'learner' ? 'learner' : 'voter';
  }

  const KIND_TEXT = { voter: 'voter', learner: 'learner', joining: 'joining', outside: 'no member', removed: 'removed' };
  const KIND_LONG = {
    voter: 'voting member',
    learner: 'non-voting member (learner)',
    joining: 'joining: not in the configuration yet',
    outside: 'not a member of the configuration',
    removed: 'removed from the configuration',
  };
  /* Shown greyed and dashed: no part of the configuration. */
  const outsider = (kind) => kind === 'removed' || kind === 'outside';

  /* The role word shown next to a name. */
  function roleWord(r, kind) {
    if (r.status === 'failed') return r.start_failed ? 'given up' : 'failed';
    if (kind === 'removed') return 'removed';
    if (kind === 'outside') return 'not a member';
    if (kind === 'joining') return 'joining';
    if (kind === 'learner' && r.role !== 'learner') return `${r.role || '?'}, non-voting`;
    return r.role || '?';
  }

  /* A dead member: down (unreachable) but still in the configuration, so it
   * still counts towards the majority until it is removed. */
  function deadMember(r, m) {
    const k = memberKind(r, m);
    return r && r.status === 'down' && (k === 'voter' || k === 'learner');
  }

  const plural = (n, one, many) => `${n} ${n === 1 ? one : many || `${one}s`}`;

  let toastTimer = null;
  function toast(msg, bad) {
    const t = $('#toast');
    t.textContent = msg;
    t.classList.toggle('bad', !!bad);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 2800);
  }

  function announce(msg) {
    const a = $('#announcer');
    a.textContent = '';
    setTimeout(() => { a.textContent = msg; }, 30);
  }

  function bumpSeq(data) {
    const m = /^data-(\d+)$/.exec(String(data || ''));
    if (m) state.seq = Math.max(state.seq, Number(m[1]));
  }

  // ================================================================ HTTP

  /* Returns {ok, status, body, error}; `error` is a readable string on failure.
   * A 401 (the coordinator wants its API token) asks for it (auth.js) and
   * then makes the call again. */
  async function api(method, path, body, timeoutMs = 15000) {
    const res = await apiOnce(method, path, body, timeoutMs);
    if (res.status !== 401 || !window.ReplAuth) return res;
    await window.ReplAuth.login();
    return api(method, path, body, timeoutMs);
  }

  async function apiOnce(method, path, body, timeoutMs) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    const auth = window.ReplAuth ? window.ReplAuth.headers : (h) => h;
    try {
      const res = await fetch(path, {
        method,
        headers: auth(body !== undefined ? { 'Content-Type': 'application/json' } : undefined),
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: ctl.signal,
        cache: 'no-store',
      });
      let parsed = null;
      const text = await res.text();
      try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = null; }
      if (res.ok) return { ok: true, status: res.status, body: parsed };
      const e = parsed && parsed.error;
      const error = e
        ? `${res.status} ${e.code || ''}${e.message ? ': ' + e.message : ''}`.trim()
        : `${res.status} ${res.statusText || 'error'}`;
      return { ok: false, status: res.status, body: parsed, error,
               retryAfter: res.headers.get('Retry-After') };
    } catch (err) {
      const error = err.name === 'AbortError' ? 'timed out (no answer)' : `network error (${err.message})`;
      return { ok: false, status: 0, body: null, error };
    } finally {
      clearTimeout(timer);
    }
  }

  // ================================================================ cluster view (D3)

  const svg = d3.select('#cluster-svg');
  const wrap = document.getElementById('cluster-wrap');
  const gWater = svg.append('g').attr('class', 'water').attr('aria-hidden', 'true');
  const gLinks = svg.append('g').attr('class', 'links').attr('aria-hidden', 'true');
  const gFaults = svg.append('g').attr('class', 'faults');
  const gPulses = svg.append('g').attr('class', 'pulses').attr('aria-hidden', 'true');
  const gMsgs = svg.append('g').attr('class', 'msgs').attr('aria-hidden', 'true');
  const gNodes = svg.append('g').attr('class', 'nodes');
  const gFx = svg.append('g').attr('class', 'fx').attr('aria-hidden', 'true');

  const layout = { w: 0, h: 0, cx: 0, cy: 0, R: 0, r: 36, pos: new Map() };

  /* The two label lines of a circle: "name · role", then index and lag (or why not). */
  function labelLines(d, c, r, cap, strip) {
    const kind = memberKind(d);
    const inc = incidentOf(d);
    // Still failed, killed, down or frozen (one given up at start keeps its own words).
    const gone = inc && !inc.back && !d.start_failed;
    const name = `${shortName(d, cap, strip)} · ${gone ? incidentText(inc) : roleWord(d, kind)}`;
    let meta;
    const pz = state.past === null ? pausedFault(d.id) : null;
    if (pz) meta = `paused${pz.left > 0 ? ` · ${fmtDuration(pz.left)} left` : pz.ms ? ` for ${fmtDuration(pz.ms)}` : ''}`;
    else if (state.removing.has(d.id) && kind !== 'removed') meta = 'removing…';
    else if (gone && d.start_failed) meta = 'crashed at start · not restarted';
    else if (gone) meta = inc.since ? `since ${fmtClock(inc.since)}${inc.what === 'frozen' ? ' · not answering' : d.status === 'failed' ? ' · restarting…' : ''}` : inc.what;
    else if (inc) meta = `was ${inc.what} · back in ${fmtDuration(inc.back - inc.since)}`;
    else if (d.status === 'failed') meta = d.start_failed ? 'crashed at start · not restarted' : 'restarting…';
    else if (state.removing.has(d.id) && kind !== 'removed') meta = 'removing…';
    else if (outsider(kind)) meta = d.status === 'up' ? 'not a member' : `${d.status} · not a member`;
    else if (d.status === 'down') meta = `down · #${show(d.commit_index)}`;
    else if (diskFull(d)) meta = `disk full · #${show(d.commit_index)}`;
    else if (catchingUp(d, c)) meta = `catching up ${show(d.commit_index)}/${show(c && c.commit_index)}`;
    else meta = `#${show(d.commit_index)} · lag ${show(d.lag)}${r < 22 ? ` · e${show(d.epoch)}` : ''}`;
    return [name, meta];
  }

  /* Text widths for the layout, measured with the labels' own fonts. */
  const measureCtx = document.createElement('canvas').getContext('2d');
  let labelFont = null;
  function textWidth(text, line, small) {
    if (!labelFont) labelFont = getComputedStyle(document.body).fontFamily || 'sans-serif';
    measureCtx.font = line === 0
      ? `700 ${small ? 12 : 13.5}px ${labelFont}`
      : `400 ${small ? 10.5 : 11.5}px ${labelFont}`;
    return measureCtx.measureText(text).width;
  }

  /* Where a node's two label lines go, relative to its centre, for circle radius r
   * and ring angle a: under the circle on small rings, radially outside on big ones. */
  function labelSpot(r, a, radial) {
    if (!radial) return { x: 0, y1: r + 32, y2: r + 47, anchor: 'middle' };
    const c = Math.cos(a), s = Math.sin(a);
    const dist = r + 18;
    const lx = c * dist, ly = s * dist;
    const top = ly + (s - 1) * 15;             // block of two lines, ~30px tall
    return { x: lx, y1: top + 12, y2: top + 27, anchor: c > 0.15 ? 'start' : c < -0.15 ? 'end' : 'middle' };
  }

  /* The box a node takes (circle with its rings, and its labels of width `lw`), relative to its centre. */
  function nodeBox(r, a, radial, lw) {
    const ring = r + 10;
    const L = labelSpot(r, a, radial);
    const x0 = L.anchor === 'start' ? L.x : L.anchor === 'end' ? L.x - lw : L.x - lw / 2;
    return {
      x0: Math.min(-ring, x0 - 4), x1: Math.max(ring, x0 + lw + 4),
      y0: Math.min(-ring, L.y1 - 14), y1: Math.max(ring, L.y2 + 5),
    };
  }

  /* The largest radius R in [lo, hi] for which nodes at u[i] * R with boxes
   * [b0[i], b1[i]] span at most `avail` (the span grows with R). */
  function fitRadius(u, b0, b1, avail, lo, hi) {
    const span = (R) => Math.max(...u.map((x, i) => x * R + b1[i])) - Math.min(...u.map((x, i) => x * R + b0[i]));
    if (span(hi) <= avail) return hi;
    if (span(lo) > avail) return lo;
    for (let k = 0; k < 24; k++) {
      const mid = (lo + hi) / 2;
      if (span(mid) <= avail) lo = mid; else hi = mid;
    }
    return lo;
  }

  /* Ring layout, stable by id (a failover recolours circles, it never moves them),
   * scaled to fill the box. Labels (name · role, then index · lag) sit under each
   * circle for small rings, and radially outside the ring for bigger ones so that
   * neighbours' labels and the replication links in the middle never collide.
   * The labels are measured, so long names shrink the ring instead of leaving it. */
  function computeLayout(replicas, c) {
    const rect = wrap.getBoundingClientRect();
    const w = Math.max(260, rect.width), h = Math.max(260, rect.height);
    const n = replicas.length;
    const legend = wrap.querySelector('.legend');
    const legendH = (legend ? legend.getBoundingClientRect().height : 22) + 8;   // legend overlay at the bottom
    const H = h - legendH;
    const radial = n >= 4;
    const narrow = w < 480;
    const small = n > 8 || (narrow && radial);
    const unit = replicas.map((_, i) => {
      if (n === 1) return [0, 0, Math.PI / 2];
      if (n === 2) return i === 0 ? [-1, 0, Math.PI] : [1, 0, 0];
      const a = -Math.PI / 2 + (i * 2 * Math.PI) / n;
      return [Math.cos(a), Math.sin(a), a];
    });
    const xs = unit.map((u) => u[0]), ys = unit.map((u) => u[1]);
    let rMax = n <= 3 ? 44 : n <= 5 ? 40 : n <= 8 ? 34 : n <= 11 ? 28 : 24;
    if (narrow) rMax = Math.min(rMax, 36);
    const sinN = n > 2 ? Math.sin(Math.PI / n) : 1;
    // circles closer than this would touch their neighbours
    const Rmin = n > 2 ? (15 / 0.62) / sinN : 24;
    const strip = commonStrip(replicas);
    const attempt = (cap) => {
      let r = rMax, Rx = 0, Ry = 0, boxes = [];
      for (let k = 0; k < 4; k++) {               // r depends on the radii (neighbours must not touch)
        const lw = replicas.map((d) => Math.max(...labelLines(d, c, r, cap, strip).map((t, line) => textWidth(t, line, small))));
        boxes = unit.map((u, i) => nodeBox(r, u[2], radial, lw[i]));
        // labels side by side under circles need the circles that far apart
        let minRx = 24;
        if (!radial && n >= 2) {
          const [i, j] = n === 2 ? [0, 1] : [1, 2];
          minRx = ((lw[i] + lw[j]) / 2 + 16) / Math.max(0.1, Math.abs(xs[j] - xs[i]));
        }
        Rx = fitRadius(xs, boxes.map((b) => b.x0), boxes.map((b) => b.x1), w - 8, Rmin, 340);
        Ry = fitRadius(ys, boxes.map((b) => b.y0), boxes.map((b) => b.y1), H - 8, Rmin, 340);
        // an ellipse when the box is not square, but not a squashed one
        Rx = Math.min(Rx, Ry * 1.5);
        Ry = Math.min(Ry, Rx * (narrow ? 1.7 : 1.3));
        Rx = Math.max(Rx, Math.min(minRx, 340));
        if (n > 2) r = Math.max(15, Math.min(rMax, Math.min(Rx, Ry) * sinN * 0.62));
      }
      return { r, Rx, Ry, boxes, cap };
    };
    // long names: shorten them rather than shrink the ring below readable circles
    const good = n > 2 ? Math.min(rMax, 24) / 0.62 / sinN : 60;
    let fit;
    for (const cap of [16, 12, 9]) {
      fit = attempt(cap);
      if (Math.min(fit.Rx, fit.Ry) >= good) break;
    }
    let { r, Rx, Ry } = fit;
    const { boxes } = fit;
    if (n === 1) { Rx = 0; Ry = 0; }
    const R = Math.min(Rx, Ry);
    // centre what is drawn (circles and labels) in the box above the legend
    const ext = (u, Rr, k0, k1) => [Math.min(...u.map((x, i) => x * Rr + boxes[i][k0])), Math.max(...u.map((x, i) => x * Rr + boxes[i][k1]))];
    const [ex0, ex1] = n ? ext(xs, Rx, 'x0', 'x1') : [0, 0];
    const [ey0, ey1] = n ? ext(ys, Ry, 'y0', 'y1') : [0, 0];
    const ox = (w - (ex1 - ex0)) / 2 - ex0;
    const oy = Math.max(0, (H - (ey1 - ey0)) / 2) - ey0;
    Object.assign(layout, { w, h, r, R, cx: ox, cy: oy, radial, small, cap: fit.cap, strip });
    layout.pos = new Map();
    replicas.forEach((rep, i) => layout.pos.set(rep.id, { x: ox + unit[i][0] * Rx, y: oy + unit[i][1] * Ry, a: unit[i][2] }));
    svg.attr('viewBox', `0 0 ${w} ${h}`);
  }

  /* Where a node's two label lines go, relative to its centre. */
  function labelPlace(d) {
    const p = layout.pos.get(d.id);
    return labelSpot(layout.r, p ? p.a : Math.PI / 2, layout.radial && !!p);
  }

  const arc = d3.arc().startAngle(0);

  function nodeAria(r, c) {
    const parts = [`${r.name || r.id}`, roleText(r)];
    if (isPrimary(r)) parts.push('current primary');
    parts.push(`epoch ${show(r.epoch)}`, `commit index ${show(r.commit_index)}`, `lag ${show(r.lag)}`);
    if (catchingUp(r, c)) parts.push(`catching up ${Math.round(progressOf(r, c) * 100)} percent`);
    if (splitView(r, c)) parts.push(`believes the primary is ${r.believes_primary || 'none'}`);
    parts.push('press Enter for details');
    return parts.join(', ');
  }

  /* An element that was fading out but is wanted again: stop the fade. */
  function revive(update) {
    update.filter('.exiting').interrupt().classed('exiting', false).style('opacity', 1);
    return update;
  }
  /* Elements not in the middle of an animation (those are left to finish it). */
  function idle(sel) {
    return sel.filter(function () { return d3.active(this) === null; });
  }

  function renderCluster() {
    const c = state.cluster;
    const reps = c ? [...c.replicas].sort(byId) : [];
    $('#cluster-empty').hidden = reps.length > 0;
    computeLayout(reps, c);
    // Snapshots arrive up to ~10/s; only animate when something actually moves,
    // so running animations are not restarted on every heartbeat-age change.
    const layoutKey = `${Math.round(layout.w)}x${Math.round(layout.h)}:${reps.map((x) => x.id).join(',')}`;
    const moved = layoutKey !== state.layoutKey;
    state.layoutKey = layoutKey;
    const t = moved ? svg.transition().duration(450).ease(d3.easeCubicOut) : null;
    if (moved && window.ReplMessages) window.ReplMessages.clear();   // dots in flight were on the old ring
    renderWatermark(c);
    renderLinks(c, reps, moved, t);
    renderFaults(reps);
    renderNodes(c, reps, moved, t);
    diffEffects(state.prev, c);
  }

  /* The epoch, large and faint in the middle of the ring; a hint when there is no primary. */
  function renderWatermark(c) {
    const { cx, cy, R } = layout;
    const wm = gWater.selectAll('g.wm').data(c ? [c] : []).join((enter) => {
      const g = enter.append('g').attr('class', 'wm');
      g.append('text').attr('class', 'watermark');
      g.append('text').attr('class', 'watermark-sub');
      return g;
    });
    const big = Math.max(24, Math.min(72, R * 0.42));
    wm.select('.watermark').attr('x', cx).attr('y', cy - 6).attr('font-size', big).text((d) => show(d.epoch));
    const m = membership(c);
    const lost = !!m && m.voters.length > 0 && !m.ok;   // not merely still forming
    wm.select('.watermark-sub').attr('x', cx).attr('y', cy + big * 0.5 + 6)
      .text((d) => (d.primary ? 'epoch' : lost ? 'epoch · no majority' : 'epoch · no primary'))
      .style('fill', (d) => (d.primary ? null : lost ? '#dc2626' : '#b45309'));
  }

  /* Replication links: from the primary to every other replica. */
  function renderLinks(c, reps, moved, t) {
    const { r } = layout;
    const prim = c && reps.find((x) => x.id === c.primary && isUp(x));
    const m = membership(c);
    const links = prim ? reps.filter((x) => x.id !== prim.id && !outsider(memberKind(x, m)))
      .map((x) => ({ id: x.id, s: prim, t: x, kind: memberKind(x, m) })) : [];
    const geom = (d) => {
      const a = layout.pos.get(d.s.id), b = layout.pos.get(d.t.id);
      const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
      const k1 = (r + 6) / len, k2 = (r + 6) / len;
      return { x1: a.x + dx * k1, y1: a.y + dy * k1, x2: b.x - dx * k2, y2: b.y - dy * k2 };
    };
    const linkSel = gLinks.selectAll('line.link').data(links, (d) => d.id).join(
      (enter) => enter.append('line').attr('class', 'link')
        .each(function (d) { const g = geom(d); d3.select(this).attr('x1', g.x1).attr('y1', g.y1).attr('x2', g.x1).attr('y2', g.y1); })
        .call((e) => e.transition().duration(450).ease(d3.easeCubicOut)
          .attr('x2', (d) => geom(d).x2).attr('y2', (d) => geom(d).y2)),
      (update) => revive(update),
      (exit) => exit.classed('exiting', true).transition().duration(250).style('opacity', 0).remove(),
    );
    linkSel
      .attr('class', (d) => {
        let k = 'link';
        if (!isUp(d.t)) k += ' to-down';
        else if (d.t.role === 'learner' || d.kind !== 'voter') k += ' to-learner';
        else k += ' to-backup';
        if (isUp(d.t) && catchingUp(d.t, c)) k += ' behind';
        return k;
      })
      .attr('data-target', (d) => d.id);
    (moved ? linkSel.transition(t) : idle(linkSel))
      .attr('x1', (d) => geom(d).x1).attr('y1', (d) => geom(d).y1)
      .attr('x2', (d) => geom(d).x2).attr('y2', (d) => geom(d).y2);
    state.links = links.map((d) => ({ ...geom(d), id: d.id, up: isUp(d.t) }));
  }

  /* What the active faults do to each pair of replicas: cut (nothing passes) or
   * slow (delay, loss). Scrubbed back, the faults of that moment are not known
   * in this detail: none are drawn. */
  function pairFaults(reps) {
    const out = new Map();
    const key = (a, b) => (a < b ? `${a}|${b}` : `${b}|${a}`);
    const put = (a, b, what) => {
      if (a === b) return;
      const k = key(a, b), cur = out.get(k) || { a, b, cut: false, delay: 0, loss: 0 };
      if (what.cut) cur.cut = true;
      cur.delay = Math.max(cur.delay, what.delay || 0);
      cur.loss = Math.max(cur.loss, what.loss || 0);
      out.set(k, cur);
    };
    const ids = reps.map((r) => r.id);
    for (const f of state.past === null ? state.faults : []) {
      if (f.kind === 'partition' && Array.isArray(f.groups)) {
        const g = new Map();
        f.groups.forEach((grp, i) => grp.forEach((id) => g.set(id, i)));
        for (const a of ids) for (const b of ids) if (g.has(a) && g.has(b) && g.get(a) !== g.get(b)) put(a, b, { cut: true });
      } else if (f.kind === 'isolate') {
        for (const b of ids) put(f.replica, b, { cut: true });
      } else if (f.kind === 'link' && Array.isArray(f.between)) {
        const loss = Number(f.loss) || 0;
        put(f.between[0], f.between[1], loss >= 1 ? { cut: true } : { delay: Number(f.delay_ms) || 0, loss });
      }
    }
    return [...out.values()].filter((p) => layout.pos.has(p.a) && layout.pos.has(p.b));
  }

  function renderFaults(reps) {
    const pairs = pairFaults(reps);
    state.pairFaults = new Map(pairs.map((p) => [p.a < p.b ? `${p.a}|${p.b}` : `${p.b}|${p.a}`, p]));
    const g = gFaults.selectAll('g.fault-link').data(pairs, (p) => `${p.a}|${p.b}`).join((enter) => {
      const e = enter.append('g').attr('class', 'fault-link');
      e.append('line'); e.append('text');
      return e;
    });
    g.attr('class', (p) => `fault-link ${p.cut ? 'cut' : 'slow'}`).attr('data-a', (p) => p.a).attr('data-b', (p) => p.b)
      .each(function (p) {
        const a = layout.pos.get(p.a), b = layout.pos.get(p.b);
        const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
        const sel = d3.select(this);
        sel.select('line').attr('x1', a.x).attr('y1', a.y).attr('x2', b.x).attr('y2', b.y);
        sel.select('text').attr('x', mx).attr('y', my - 4).attr('text-anchor', 'middle')
          .text(p.cut ? '✕ cut' : [p.delay ? `+${p.delay} ms` : '', p.loss ? `${Math.round(p.loss * 100)}% lost` : ''].filter(Boolean).join(' · '));
      });
  }

  /* One focusable circle per replica, with its rings, glyph, labels and badge. */
  function renderNodes(c, reps, moved, t) {
    const nodes = gNodes.selectAll('g.node').data(reps, (d) => d.id).join(
      (enter) => {
        const g = enter.append('g')
          .attr('tabindex', 0).attr('role', 'button')
          .attr('transform', (d) => { const p = layout.pos.get(d.id); return `translate(${p.x},${p.y}) scale(0.2)`; })
          .style('opacity', 0)
          .call((e) => e.transition().duration(450).ease(d3.easeBackOut)
            .style('opacity', 1)
            .attr('transform', (d) => { const p = layout.pos.get(d.id); return `translate(${p.x},${p.y}) scale(1)`; }))
          .on('click', (ev, d) => select(d.id))
          .on('keydown', (ev, d) => {
            if (ev.key === 'Enter' || ev.key === ' ' || ev.key === 'Spacebar') { ev.preventDefault(); select(d.id); }
          });
        g.append('circle').attr('class', 'halo');
        g.append('circle').attr('class', 'progress-track');
        g.append('path').attr('class', 'progress');
        g.append('circle').attr('class', 'body');
        g.append('circle').attr('class', 'sel-ring');
        g.append('circle').attr('class', 'focus-ring');
        g.append('text').attr('class', 'glyph');
        g.append('text').attr('class', 'inner');
        g.append('text').attr('class', 'label-name');
        g.append('text').attr('class', 'label-meta');
        const b = g.append('g').attr('class', 'badge');
        b.append('circle').attr('r', 9);
        b.append('text').text('!');
        b.append('title');
        g.append('title').attr('class', 'tip');
        return g;
      },
      (update) => revive(update),
      (exit) => exit.classed('exiting', true).transition().duration(300).style('opacity', 0).remove(),
    );

    const m = membership(c);
    nodes
      .attr('class', (d) => {
        const kind = memberKind(d, m);
        let k = `node role-${d.role || 'unknown'} status-${d.status || 'unknown'} member-${kind}`;
        const inc = incidentOf(d);
        if (inc) k += inc.back ? ' incident incident-back' : ' incident';
        if (state.past === null && pausedFault(d.id)) k += ' paused';
        if (outsider(kind)) k += ' outsider';
        if (d.id === state.selected) k += ' selected';
        if (catchingUp(d, c)) k += ' catching-up';
        if (state.removing.has(d.id)) k += ' removing';
        return k;
      })
      .attr('data-id', (d) => d.id)
      .attr('data-role', (d) => d.role)
      .attr('data-status', (d) => d.status)
      .attr('data-incident', (d) => { const i = incidentOf(d); return i ? incidentText(i) : null; })
      .attr('data-paused', (d) => (pausedFault(d.id) ? 'true' : null))
      .attr('data-member', (d) => memberKind(d, m))
      .attr('data-voter', (d) => (memberKind(d, m) === 'voter' ? 'true' : 'false'))
      .attr('data-primary', (d) => (isPrimary(d) ? 'true' : null))
      .attr('data-epoch', (d) => d.epoch)
      .attr('data-commit-index', (d) => d.commit_index)
      .attr('data-lag', (d) => d.lag)
      .attr('aria-pressed', (d) => (d.id === state.selected ? 'true' : 'false'))
      .attr('aria-label', (d) => nodeAria(d, c));
    (moved ? nodes.transition(t) : idle(nodes))
      .style('opacity', 1)
      .attr('transform', (d) => { const p = layout.pos.get(d.id); return `translate(${p.x},${p.y}) scale(1)`; });
    decorateNodes(nodes, c);
  }

  function decorateNodes(nodes, c) {
    const { r } = layout;
    nodes.select('.halo').attr('r', r + 9);
    nodes.select('.body').attr('r', r);
    nodes.select('.progress-track').attr('r', r + 5.5);
    nodes.select('.progress')
      .attr('d', (d) => (catchingUp(d, c)
        ? arc.innerRadius(r + 3).outerRadius(r + 8).endAngle(Math.max(0.04, progressOf(d, c)) * 2 * Math.PI)()
        : null));
    nodes.select('.sel-ring').attr('r', r + 12);
    nodes.select('.focus-ring').attr('r', r + 16);
    nodes.select('.glyph')
      .attr('y', r >= 22 ? -r * 0.14 : 0)
      .attr('font-size', Math.round(r * (r >= 22 ? 0.78 : 0.95)))
      .text((d) => (d.status === 'failed' || (incidentOf(d) && !incidentOf(d).back) ? '✕' : outsider(memberKind(d)) ? '−' : ROLE_GLYPH[d.role] || '?'));
    nodes.select('.inner')
      .attr('y', r * 0.52)
      .attr('font-size', Math.max(9, Math.min(12, r * 0.3)))
      .style('display', r >= 22 ? null : 'none')   // tiny circles: the epoch moves to the label
      .text((d) => (r >= 30 ? `epoch ${show(d.epoch)}` : `e${show(d.epoch)}`));
    nodes.select('.label-name')
      .attr('x', (d) => labelPlace(d).x).attr('y', (d) => labelPlace(d).y1)
      .attr('text-anchor', (d) => labelPlace(d).anchor)
      .style('font-size', layout.small ? '12px' : null)
      .text((d) => labelLines(d, c, r, layout.cap, layout.strip)[0]);
    nodes.select('.label-meta')
      .attr('x', (d) => labelPlace(d).x).attr('y', (d) => labelPlace(d).y2)
      .attr('text-anchor', (d) => labelPlace(d).anchor)
      .style('font-size', layout.small ? '10.5px' : null)
      .classed('lagging', (d) => (num(d.lag) || 0) > 0 || catchingUp(d, c))
      .text((d) => labelLines(d, c, r, layout.cap, layout.strip)[1]);
    nodes.select('.badge')
      .attr('transform', `translate(${r * 0.74},${-r * 0.74})`)
      .style('display', (d) => (splitView(d, c) ? null : 'none'))
      .select('title').text((d) => `${d.name || d.id} believes the primary is ${d.believes_primary ? replicaName(d.believes_primary) : 'none'}`);
    nodes.select('title.tip').text((d) => nodeAria(d, c).replace(', press Enter for details', ''));
  }

  /* Effects derived from snapshot changes, so they happen whichever events arrive. */
  function diffEffects(prev, cur) {
    if (!prev || !cur) return;
    const before = new Map(prev.replicas.map((x) => [x.id, x]));
    for (const r of cur.replicas) {
      const p = before.get(r.id);
      if (p && p.status !== r.status && (r.status === 'failed' || r.status === 'down')) burst(r.id, 'bad');
      if (p && p.status !== 'up' && r.status === 'up') burst(r.id, 'good', 0.6);
    }
    if (cur.primary && cur.primary !== prev.primary) burst(cur.primary, 'good');
    if (num(cur.commit_index) > num(prev.commit_index)) pulse();
  }

  function burst(id, kind, strength = 1) {
    const p = layout.pos.get(id);
    if (!p) return;
    gFx.append('circle').attr('class', `burst ${kind}`)
      .attr('cx', p.x).attr('cy', p.y).attr('r', layout.r)
      .style('opacity', 0.9 * strength)
      .transition().duration(900).ease(d3.easeCubicOut)
      .attr('r', layout.r + 46).style('opacity', 0).remove();
  }

  let lastPulse = 0;
  let lastMessages = -1e9;   // when the last protocol message batch came: real dots replace the pulses
  function pulse() {
    const now = performance.now();
    if (now - lastPulse < CFG.pulseGapMs || document.hidden || now - lastMessages < 2000) return;
    lastPulse = now;
    for (const l of state.links || []) {
      if (!l.up) continue;
      gPulses.append('circle').attr('class', 'pulse').attr('r', 5)
        .attr('cx', l.x1).attr('cy', l.y1)
        .transition().duration(650).ease(d3.easeCubicInOut)
        .attr('cx', l.x2).attr('cy', l.y2)
        .transition().duration(150).attr('r', 9).style('opacity', 0).remove();
    }
  }

  // ================================================================ header + table

  function renderHeader() {
    const c = state.cluster;
    const p = $('#stat-primary');
    p.textContent = c ? (c.primary ? replicaName(c.primary) : 'none') : '–';
    p.className = c ? (c.primary ? 'has-primary' : 'no-primary') : '';
    $('#stat-epoch').textContent = c ? show(c.epoch) : '–';
    $('#stat-commit').textContent = c ? show(c.commit_index) : '–';
    if (c) {
      const up = c.replicas.filter(isAnswering).length;
      const frozen = c.replicas.filter((r) => isUp(r) && !isAnswering(r)).length;
      const sr = $('#stat-replicas');
      sr.textContent = `${up}/${c.replicas.length} up${frozen ? ` · ${frozen} frozen` : ''}`;
      sr.title = frozen ? 'frozen: connected but not answering (paused or SIGSTOPped); not counted as up' : '';
      const nv = (c.voters || []).length, q = num(c.quorum), has = num(c.reachable_voters);
      const mj = $('#stat-majority');
      mj.textContent = nv && q !== null ? `needs ${q} of ${nv} — has ${show(has)}` : '–';
      mj.className = nv && q !== null ? (has >= q ? 'ok' : 'bad') : '';
      mj.title = nv ? `a primary needs the votes (and acknowledgements) of ${q} of the ${nv} voters; ${show(has)} are reachable and answering` : '';
    }
    if (c) {
      document.title = `${c.primary ? `${replicaName(c.primary)} primary` : 'no primary'} · epoch ${show(c.epoch)} · replicacao`;
    }
    const noPrimary = !!c && !c.primary;
    for (const b of [$('#btn-fail-primary')]) b.disabled = noPrimary;
    const m = membership(c);
    const cid = $('#stat-cluster-item');
    cid.hidden = !(m && m.clusterId);
    if (m && m.clusterId) {
      const dd = $('#stat-cluster');
      dd.textContent = m.clusterId.length > 10 ? `${m.clusterId.slice(0, 8)}…` : m.clusterId;
      dd.title = `cluster id ${m.clusterId}`;
    }
    const add = $('#btn-add-replica');
    add.hidden = !(m && m.spawn);
    renderConfig(c, m);
  }

  /* The configuration in one line, and why there is or is no primary: a majority
   * of the voters must be reachable to elect one. */
  let configSig = '';
  function renderConfig(c, m) {
    const box = $('#config-summary');
    if (!c || !m) { box.hidden = true; return; }
    const nv = m.voters.length, nl = m.learners.length;
    const joining = c.replicas.filter((r) => memberKind(r, m) === 'joining').length;
    let st, text, hint = '';
    if (nv === 0) {
      st = 'unknown';
      text = 'The cluster is still forming: no configuration yet…';
    } else if (!m.ok) {
      st = 'lost';
      text = `${m.reachable} of ${plural(nv, 'voter')} reachable — a majority needs ${m.quorum}: no primary can be elected`;
      hint = 'Bring the down replicas back so that a majority can vote (removing dead members needs a ' +
        'primary too, so it comes after). If more than half of the voters are gone for good, forced ' +
        'recovery (replctl force-config, unsafe) is the last resort: see the README and docs/membership.md.';
    } else {
      st = m.reachable === m.quorum && nv > 1 ? 'risk' : 'ok';
      const parts = [plural(nv, 'voter')];
      if (nl) parts.push(plural(nl, 'learner'));
      if (joining) parts.push(`${joining} joining`);
      parts.push(`majority needs ${m.quorum}`, `${m.reachable} of ${nv} reachable`);
      if (st === 'risk') parts.push('no voter to spare');
      if (!c.primary) parts.push('electing a primary…');
      text = parts.join(' · ');
    }
    const sig = `${st}|${text}|${hint}|${m.configIndex}|${m.reported}`;
    if (sig === configSig) return;
    configSig = sig;
    box.hidden = false;
    box.dataset.state = st;
    box.dataset.source = m.reported ? 'reported' : 'derived';
    box.querySelector('.cfg-icon').textContent = st === 'lost' ? '⚠' : st === 'risk' ? '!' : st === 'ok' ? '✓' : '…';
    const t = $('#config-text');
    t.replaceChildren(text);
    if (m.configIndex) t.append(h('span', { class: 'cfg-index' }, ` · config #${m.configIndex}`));
    t.title = m.reported ? '' : 'Derived from the replica list: this coordinator does not report the configuration';
    const hp = $('#config-hint');
    hp.hidden = !hint;
    hp.textContent = hint;
  }

  function renderTable() {
    const c = state.cluster;
    const reps = c ? [...c.replicas].sort(byId) : [];
    const rows = d3.select('#replica-table tbody').selectAll('tr').data(reps, (d) => d.id).join((enter) => {
      const tr = enter.append('tr').on('click', (ev, d) => { if (!ev.target.closest('button')) select(d.id); });
      tr.append('td').attr('class', 'row-name');
      tr.append('td').attr('class', 'c-role');
      tr.append('td').attr('class', 'c-member');
      tr.append('td').attr('class', 'c-status');
      tr.append('td').attr('class', 'num opt opt1 c-epoch');
      tr.append('td').attr('class', 'num opt opt1 c-last');
      tr.append('td').attr('class', 'num opt c-commit');
      tr.append('td').attr('class', 'num c-lag');
      tr.append('td').attr('class', 'num opt opt1 c-hb');
      const act = tr.append('td').attr('class', 'c-actions');
      act.append('button').attr('type', 'button').attr('class', 'btn btn-small btn-remove-row')
        .on('click', (ev, d) => askRemove(d.id));
      act.append('button').attr('type', 'button').attr('class', 'btn btn-small btn-fail')
        .on('click', (ev, d) => failReplica(d.id));
      return tr;
    });
    const m = membership(c);
    rows.attr('data-id', (d) => d.id).classed('selected', (d) => d.id === state.selected)
      .attr('data-member', (d) => memberKind(d, m))
      .classed('row-removed', (d) => outsider(memberKind(d, m)))
      .classed('row-dead', (d) => deadMember(d, m));
    rows.select('.row-name').text((d) => shortName(d, 24)).attr('title', (d) => `${d.name || d.id} (id ${d.id}, ${show(d.address)})`);
    rows.select('.c-role').selectAll('span').data((d) => [d]).join('span')
      .attr('class', (d) => `pill role-${d.role}${d.status !== 'up' ? ' stale' : ''}`).text((d) => d.role);
    rows.select('.c-member').selectAll('span').data((d) => [d]).join('span')
      .attr('class', (d) => `pill member-${memberKind(d, m)}`)
      .attr('title', (d) => KIND_LONG[memberKind(d, m)])
      .text((d) => KIND_TEXT[memberKind(d, m)]);
    rows.select('.c-status').selectAll('span').data((d) => [d]).join('span')
      .attr('class', (d) => `pill status-${d.status}`).text((d) => d.status);
    rows.select('.c-epoch').text((d) => show(d.epoch));
    rows.select('.c-last').text((d) => show(d.last_index));
    rows.select('.c-commit').text((d) => show(d.commit_index));
    rows.select('.c-lag').text((d) => show(d.lag)).classed('lag-bad', (d) => (num(d.lag) || 0) > 0);
    rows.select('.c-hb').text((d) => (isPrimary(d) ? '—' : fmtDuration(d.heartbeat_age_ms)));
    const removable = (d) => canRemove() && (deadMember(d, m) || d.start_failed === true || state.removing.has(d.id));
    rows.select('.btn-fail')
      .style('display', (d) => (removable(d) ? 'none' : null))   // Remove takes its place
      .text('Fail')
      .attr('aria-label', (d) => `Fail ${d.name || d.id}`)
      .property('disabled', (d) => d.status === 'failed' || outsider(memberKind(d, m)));
    // a dead member still counts towards the majority: offer to remove it right here
    // (in place of Fail, which it is past)
    rows.select('.btn-remove-row')
      .style('display', (d) => (removable(d) ? null : 'none'))
      .text((d) => (state.removing.has(d.id) ? 'Removing…' : 'Remove'))
      .attr('aria-label', (d) => `Remove ${d.name || d.id} from the cluster`)
      .attr('title', (d) => (d.start_failed
        ? `${d.name || d.id} kept crashing at start and is not restarted any more`
        : `${d.name || d.id} is down but still a member: it counts towards the majority until it is removed`))
      .property('disabled', (d) => state.removing.has(d.id));
  }

  // ================================================================ details panel

  const details = $('#details');
  const detailsBody = $('#details-body');

  function select(id) {
    if (id !== state.selected) state.detailAt = null;
    if (state.selected !== id) {
      state.selected = id;
      state.detail = null;
      state.detailSig = '';
      state.confirming = null;
      buildDetails();
    }
    renderAll();
    scheduleDetailsFetch(true);
    announce(`Details for ${replicaName(id)}`);
    if (window.innerWidth < 760) details.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  function closeDetails() {
    const id = state.selected;
    state.selected = null;
    state.detail = null;
    state.confirming = null;
    $('#details-empty').hidden = false;
    detailsBody.hidden = true;
    details.setAttribute('aria-labelledby', 'details-title');
    renderAll();
    const n = id && document.querySelector(`.node[data-id="${CSS.escape(id)}"]`);
    if (n) n.focus();
  }

  function kvItem(key, label) {
    return h('div', null, h('dt', { text: label }), h('dd', { 'data-k': key, text: '–' }));
  }

  function buildDetails() {
    $('#details-empty').hidden = true;
    detailsBody.hidden = false;
    detailsBody.replaceChildren(
      h('div', { class: 'details-head' },
        h('span', { class: 'sw', 'data-k': 'sw', 'aria-hidden': 'true', style: 'width:26px;height:26px;font-size:13px' }),
        h('h2', { id: 'details-name', tabindex: '-1' }),
        h('span', { class: 'pill', 'data-k': 'role' }),
        h('span', { class: 'pill', 'data-k': 'member' }),
        h('span', { class: 'pill', 'data-k': 'status' }),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Close details', onclick: closeDetails }, '×')),
      h('div', { class: 'details-addr', 'data-k': 'addr' }),
      h('div', { class: 'details-actions', 'data-k': 'actions', role: 'group', 'aria-label': 'Actions on this replica' },
        h('button', { type: 'button', class: 'btn btn-small btn-fail', 'data-k': 'fail', onclick: () => failReplica(state.selected) }, 'Fail'),
        h('button', {
          type: 'button', class: 'btn btn-small btn-fail', 'data-k': 'fail-replace', hidden: true,
          title: 'Crash it, start a new replica with a new id in its place, and remove this one from the configuration',
          onclick: () => failAndReplace(state.selected),
        }, 'Fail & replace'),
        h('button', {
          type: 'button', class: 'btn btn-small btn-remove', 'data-k': 'remove', hidden: true,
          'aria-expanded': 'false', 'aria-controls': 'confirm-remove',
          onclick: () => askRemove(state.selected),
        }, 'Remove from cluster…')),
      h('div', { class: 'confirm', id: 'confirm-remove', 'data-k': 'confirm', role: 'group', 'aria-labelledby': 'confirm-remove-text', hidden: true },
        h('p', { id: 'confirm-remove-text', 'data-k': 'confirm-text' }),
        h('p', { class: 'confirm-effect', 'data-k': 'confirm-effect' }),
        h('div', { class: 'confirm-buttons' },
          h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-k': 'confirm-yes', onclick: () => removeReplica(state.confirming) }, 'Remove'),
          h('button', { type: 'button', class: 'btn btn-small', 'data-k': 'confirm-no', onclick: cancelRemove }, 'Cancel'))),
      h('p', { class: 'alert bad', 'data-k': 'action-err', role: 'alert', hidden: true }),
      h('p', { class: 'alert', 'data-k': 'member-note', hidden: true }),
      h('p', { class: 'alert', 'data-k': 'split', hidden: true }),
      h('p', { class: 'alert bad', 'data-k': 'err', hidden: true }),
      h('p', { class: 'alert', 'data-k': 'known', role: 'status', hidden: true }),
      h('dl', { class: 'kv' },
        kvItem('epoch', 'epoch'), kvItem('last_index', 'last index'), kvItem('commit_index', 'commit index'),
        kvItem('lag', 'lag'), kvItem('heartbeat', 'heartbeat'), kvItem('uptime', 'uptime'),
        kvItem('believes', 'sees primary'), kvItem('processed', 'processed'), kvItem('synced', 'synced'),
        kvItem('disk', 'disk'), kvItem('log', 'log on disk'), kvItem('memory', 'memory')),
      h('div', { class: 'progress-bar', 'data-k': 'progress', hidden: true },
        h('div', { class: 'bar', role: 'progressbar', 'aria-label': 'catch-up progress', 'aria-valuemin': '0', 'aria-valuemax': '100' },
          h('div', { class: 'fill' })),
        h('div', { class: 'cap' })),
      h('div', { class: 'data-lists' },
        h('section', { class: 'data-list processed', 'aria-labelledby': 'processed-h' },
          h('h3', { id: 'processed-h' }, 'Processed data', h('span', { class: 'count', 'data-k': 'pcount' })),
          h('p', { class: 'hint' }, 'committed while it was primary'),
          h('ol', { id: 'processed-list', 'aria-label': 'processed data, newest first' })),
        h('section', { class: 'data-list synced', 'aria-labelledby': 'synced-h' },
          h('h3', { id: 'synced-h' }, 'Synced data', h('span', { class: 'count', 'data-k': 'scount' })),
          h('p', { class: 'hint' }, 'received from a primary by sync'),
          h('ol', { id: 'synced-list', 'aria-label': 'synced data, newest first' }))),
      h('div', { class: 'peers' },
        h('h3', null, 'Peers'),
        h('table', null,
          h('thead', null, h('tr', null, h('th', { text: 'peer' }), h('th', { text: 'address' }),
            h('th', { text: 'voter' }), h('th', { text: 'match' }), h('th', { text: 'last seen' }))),
          h('tbody', { 'data-k': 'peers' }))));
    details.setAttribute('aria-labelledby', 'details-name');
  }

  const dk = (k) => detailsBody.querySelector(`[data-k="${k}"]`);

  function renderDetails() {
    const id = state.selected;
    if (!id) return;
    const c = state.cluster;
    const live = c && c.replicas.find((x) => x.id === id);
    const r = { ...(state.detail || {}), ...(live || {}) };   // live snapshot wins for shared fields
    details.dataset.replica = id;
    $('#details-name').textContent = r.name || id;
    const role = r.role || 'unknown', status = r.status || (live ? 'unknown' : 'gone');
    const sw = dk('sw');
    sw.className = `sw sw-${status === 'failed' ? 'failed' : status === 'down' ? 'down' : role}`;
    sw.textContent = status === 'failed' ? '✕' : ROLE_GLYPH[role] || '?';
    const rp = dk('role');
    const inc = live ? incidentOf(live) : null;
    rp.className = `pill role-${inc ? inc.role : role}${status !== 'up' || (inc && !inc.back) ? ' stale' : ''}`;
    rp.textContent = inc && !inc.back ? incidentText(inc)
      : status !== 'up' ? `last seen as ${role}` : role + (isPrimary(r) ? ' ★' : '');
    const sp = dk('status'); sp.className = `pill status-${status}`; sp.textContent = status;
    sp.hidden = !live;                 // a replica no longer listed has no status, only its last details
    dk('actions').hidden = !live;
    const m = membership(c);
    const kind = live ? memberKind(live, m) : 'removed';
    const mp = dk('member');
    mp.className = `pill member-${kind}`;
    mp.textContent = live ? KIND_TEXT[kind] : 'gone';
    mp.title = KIND_LONG[kind];
    const name = r.name || id;
    const fb = dk('fail');
    fb.textContent = `Fail ${name}`;
    fb.disabled = !live || status === 'failed' || outsider(kind);
    const fr = dk('fail-replace');
    fr.hidden = !(m && m.spawn);
    fr.disabled = fb.disabled;
    fr.setAttribute('aria-label', `Fail ${name} and replace it with a new replica`);
    const removing = state.removing.has(id);
    const rb = dk('remove');
    rb.hidden = !(canRemove() && live && kind !== 'removed');
    rb.disabled = removing;
    rb.textContent = removing ? 'Removing…' : 'Remove from cluster…';
    rb.setAttribute('aria-label', removing ? `Removing ${name} from the cluster` : `Remove ${name} from the cluster`);
    rb.className = `btn btn-small ${live && deadMember(live, m) ? 'btn-danger' : 'btn-remove'}`;
    rb.setAttribute('aria-expanded', state.confirming === id ? 'true' : 'false');
    dk('addr').textContent = `${show(r.address)} · ${live ? KIND_LONG[kind] : 'no longer listed'}`;
    renderConfirm(id, live, m, kind);
    const ae = dk('action-err');
    const err = state.actionError && state.actionError.id === id ? state.actionError.text : '';
    ae.hidden = !err;
    if (ae.textContent !== err) ae.textContent = err;
    const note = memberNote(id, name, live, m, kind);
    const mn = dk('member-note');
    mn.hidden = !note;
    mn.className = `alert${live && deadMember(live, m) ? ' bad' : ''}`;
    if (mn.textContent !== note) mn.textContent = note;

    const split = splitView(r, c);
    const sa = dk('split');
    sa.hidden = !split;
    if (split) {
      sa.textContent = `Split view: ${name} believes the primary is ${r.believes_primary ? replicaName(r.believes_primary) : 'nobody'}, ` +
        `but the cluster's primary is ${c.primary ? replicaName(c.primary) : 'nobody'} (epoch ${show(c.epoch)}).`;
    }
    const set = (k, v, cls) => { const e = dk(k); e.textContent = v; e.className = cls || ''; };
    set('epoch', show(r.epoch));
    set('last_index', show(r.last_index));
    set('commit_index', show(r.commit_index));
    set('lag', show(r.lag), (num(r.lag) || 0) > 0 ? 'lag-bad' : '');
    set('heartbeat', isPrimary(r) ? '—' : fmtDuration(r.heartbeat_age_ms), (num(r.heartbeat_age_ms) || 0) > 1000 ? 'lag-bad' : '');
    set('uptime', fmtDuration(r.uptime_ms));
    set('believes', r.believes_primary ? replicaName(r.believes_primary) : 'none', split ? 'split' : '');
    set('processed', show(r.processed));
    set('synced', show(r.synced));
    const st = r.storage || {};
    set('disk', st.disk ? (st.disk === 'ok' ? 'ok' : 'full') : '—', diskFull(r) ? 'lag-bad' : '');
    dk('disk').title = st.disk || '';
    set('log', st.log_bytes === undefined ? '—'
      : `${fmtBytes(st.log_bytes)}${num(st.first_index) > 1 ? ` · from #${show(st.first_index)}` : ''}`);
    set('memory', st.resident_bytes === undefined ? '—' : fmtBytes(st.resident_bytes));
    dk('memory').title = st.cache_bytes === undefined ? ''
      : `resident memory of its process; ${fmtBytes(st.cache_bytes)} of it recent log entries`;
    dk('log').title = st.log_segments === undefined ? ''
      : `${show(st.log_segments)} segment file(s)${num(st.first_index) > 1 ? `; entries before #${show(st.first_index)} were replaced by a snapshot` : ''}`;

    const pb = dk('progress');
    const catching = catchingUp(r, c);
    pb.hidden = !catching;
    if (catching) {
      const pct = Math.round(progressOf(r, c) * 100);
      pb.querySelector('.fill').style.width = `${pct}%`;
      pb.querySelector('.bar').setAttribute('aria-valuenow', String(pct));
      pb.querySelector('.cap').textContent =
        `catching up: commit ${show(r.commit_index)} of ${show(c.commit_index)} (${pct}%)`;
    }

    const d = state.detail;
    // The tiles count what the lists below hold (their totals), so the two never disagree.
    const pd = d && d.processed_data, sd = d && d.synced_data;
    if (pd && num(pd.total) !== null) set('processed', show(pd.total));
    if (sd && num(sd.total) !== null) set('synced', show(sd.total));
    const known = dk('known');
    const down = !!live && (!isAnswering(live) || (inc && !inc.back));
    known.hidden = !down;
    if (down) {
      const since = inc && inc.since ? ` since ${fmtClock(inc.since)}` : '';
      const what = inc ? incidentText(inc) : status;
      const txt = state.detailAt
        ? `${name} is ${what}${since}. Shown: what it reported last, at ${fmtClock(state.detailAt)}; it answers nothing now.`
        : `${name} is ${what}${since}. It answers nothing now, and nothing was fetched from it before.`;
      if (known.textContent !== txt) known.textContent = txt;
    }
    renderList('#processed-list', pd, 'pcount', 'processed');
    renderList('#synced-list', sd, 'scount', 'synced');
    renderPeers(d && d.peers, r);
  }

  /* The "Remove from cluster" confirmation, with what the majority becomes. */
  function renderConfirm(id, live, m, kind) {
    const box = dk('confirm');
    const open = state.confirming === id && !!live;
    box.hidden = !open;
    if (!open) return;
    const name = live.name || id;
    let text = `Remove ${name} from the cluster? It leaves the configuration: it no longer votes or receives updates.`;
    if (isPrimary(live)) text += ` ${name} is the primary: it hands over to another voter first.`;
    let effect = '';
    if (m && kind === 'voter') {
      const nv = m.voters.length - 1, q = Math.floor(nv / 2) + 1;
      const reach = m.reachable - (isUp(live) ? 1 : 0);
      effect = `Afterwards: ${plural(nv, 'voter')}, a majority needs ${q}, ${reach} of them reachable now.`;
      if (nv === 0 || reach < q) effect += ' That leaves no majority reachable: the coordinator will refuse it.';
    } else if (m) {
      effect = `It is not a voter: the majority stays at ${m.quorum} of ${m.voters.length}.`;
    }
    const t = dk('confirm-text'); if (t.textContent !== text) t.textContent = text;
    const e = dk('confirm-effect'); if (e.textContent !== effect) e.textContent = effect;
    const yes = dk('confirm-yes');
    yes.textContent = `Remove ${name}`;
    yes.disabled = state.removing.has(id);
  }

  /* What membership means for this replica, when there is something to say. */
  function memberNote(id, name, live, m, kind) {
    if (!live) {
      return state.removing.has(id) || state.removedIds.has(id)
        ? `${name} was removed from the cluster and is no longer listed.`
        : `${name} is no longer listed by the coordinator.`;
    }
    if (deadMember(live, m)) {
      const who = kind === 'voter'
        ? `it still counts as a voter (a majority needs ${m.quorum} of ${m.voters.length})`
        : 'it is still a member';
      return `${name} is down, but ${who} until it is removed. Remove it if it will not come back.`;
    }
    if (kind === 'removed') return `${name} was removed from the configuration: it no longer votes or receives updates.`;
    if (diskFull(live)) {
      return `${name} cannot write its log (${live.storage.disk}). It stepped down and takes no writes; ` +
        'it resumes by itself once space is freed on its disk.';
    }
    if (live.start_failed) {
      return `${name} kept crashing right after starting and is not restarted any more: see its log. ` +
        `${kind === 'outside' ? 'Remove forgets it' : 'Remove takes it out of the configuration'}; restarting the coordinator tries again.`;
    }
    if (kind === 'outside') return `${name} is not a member of the configuration.`;
    if (kind === 'joining') return `${name} is joining: it receives the log as a learner and becomes a voter once caught up.`;
    if (kind === 'learner' && live.role === 'learner') return `${name} is a learner: it catches up from the primary and votes once promoted.`;
    if (kind === 'learner') return `${name} is a non-voting member: it does not count towards the majority.`;
    if (state.removing.has(id)) return `Removing ${name}: it leaves once the configuration change commits.`;
    return '';
  }

  function renderList(sel, page, countKey, what) {
    const entries = page && Array.isArray(page.entries) ? [...page.entries].sort((a, b) => b.index - a.index) : [];
    const total = page ? num(page.total) : null;
    dk(countKey).textContent = page
      ? (total !== null && total > entries.length ? `${entries.length} of ${total}` : `${entries.length}`)
      : '…';
    const ol = d3.select(detailsBody.querySelector(sel));
    const firstLoad = !ol.attr('data-loaded');
    ol.attr('data-loaded', page ? '1' : null);
    ol.selectAll('li.none').data(page && entries.length === 0 ? [what] : []).join('li')
      .attr('class', 'none').text((w) => `nothing ${w} yet`);
    ol.selectAll('li.entry').data(entries, (e) => `${e.index}`).join(
      (enter) => {
        const li = enter.append('li').attr('class', firstLoad ? 'entry' : 'entry fresh');
        li.append('span').attr('class', 'ix');
        li.append('span').attr('class', 'd');
        li.append('span').attr('class', 'by');
        return li;
      })
      .attr('data-index', (e) => e.index)
      .attr('data-data', (e) => e.data)
      .call((li) => {
        li.select('.ix').text((e) => `#${e.index}`);
        li.select('.d').text((e) => e.data).attr('title', (e) => `${e.data}${e.id ? ` (client id ${e.id})` : ''}`)
          .attr('tabindex', (e) => (String(e.data).length > 24 ? 0 : null));   // focus shows a long value whole
        li.select('.by').text((e) => `e${show(e.epoch)} · ${show(e.primary ? replicaName(e.primary) : e.primary)}`);
      })
      .order();
  }

  function renderPeers(peers, owner) {
    const tracks = !!owner && owner.role === 'primary';
    const tb = d3.select(dk('peers'));
    const list = Array.isArray(peers) ? [...peers].sort(byId) : [];
    tb.selectAll('tr').data(list, (p) => p.id).join((enter) => {
      const tr = enter.append('tr');
      for (let i = 0; i < 5; i++) tr.append('td');
      return tr;
    }).each(function (p) {
      const tds = this.children;
      tds[0].replaceChildren(h('span', { class: `dot ${p.connected ? 'on' : 'off'}`, 'aria-hidden': 'true' }), replicaName(p.id));
      tds[0].title = `${replicaName(p.id)} (id ${p.id})`;
      tds[0].setAttribute('aria-label', `${replicaName(p.id)}, ${p.connected ? 'connected' : 'not connected'}`);
      tds[1].textContent = show(p.address);
      tds[2].textContent = p.voter === false ? 'no' : 'yes';
      // Only a primary tracks how far each peer's log matches, and a backup hears
      // from its primary only: for the others there is nothing to show, not "0" or "never".
      tds[3].textContent = tracks ? show(p.match_index) : '—';
      tds[3].title = tracks ? '' : 'only the primary tracks how much of each log matches';
      const seen = num(p.last_seen_ms);
      tds[4].textContent = seen !== null && seen >= 0 ? `${fmtDuration(seen)} ago` : tracks ? 'never' : '—';
      tds[4].title = seen !== null && seen >= 0 ? '' : tracks ? '' : 'backups exchange nothing with each other; each hears from the primary';
    });
  }

  /* What in the snapshot means the details' lists may be stale. */
  function detailSignature() {
    const c = state.cluster;
    const r = c && c.replicas.find((x) => x.id === state.selected);
    if (!r) return 'gone';
    return [r.status, r.role, r.epoch, r.commit_index, r.last_index, r.processed, r.synced, r.believes_primary].join('|');
  }

  let detailsInflight = false, detailsDirty = false, detailsLast = 0, detailsTimer = null;
  function scheduleDetailsFetch(now) {
    if (!state.selected) return;
    // no longer listed (removed and gone): keep its last details, there is nobody to ask
    if (state.cluster && !state.cluster.replicas.some((x) => x.id === state.selected)) return;
    if (detailsInflight) { detailsDirty = true; return; }
    if (detailsTimer) return;
    const wait = now ? 0 : Math.max(0, CFG.detailsMinGapMs - (performance.now() - detailsLast));
    detailsTimer = setTimeout(fetchDetails, wait);
  }

  async function fetchDetails() {
    detailsTimer = null;
    const id = state.selected;
    if (!id) return;
    detailsInflight = true;
    detailsDirty = false;
    detailsLast = performance.now();
    const sig = detailSignature();
    const cc = num(state.cluster && state.cluster.commit_index) || 0;
    const after = Math.max(0, cc - CFG.detailsLimit);
    const res = await api('GET', `/api/replicas/${encodeURIComponent(id)}?after=${after}&limit=${CFG.detailsLimit}`);
    detailsInflight = false;
    if (state.selected !== id) { scheduleDetailsFetch(true); return; }
    const err = dk('err');
    const liveNow = state.cluster && state.cluster.replicas.find((x) => x.id === id);
    if (res.ok && res.body && !(state.detail && state.detail.id === id && liveNow && !isAnswering(liveNow))) {
      state.detail = res.body;
      state.detailAt = Date.now();
      state.detailSig = sig;
      err.hidden = true;
    } else {
      err.hidden = false;
      err.textContent = res.status === 404 ? `${id} is not part of the cluster (404).` : `Could not load ${id}: ${res.error}`;
    }
    renderDetails();
    if (detailsDirty) scheduleDetailsFetch();
  }

  // ================================================================ requests & fail

  const sessionTag = Math.random().toString(36).slice(2, 8);
  let clientCounter = 0;

  function nextData() {
    state.seq += 1;
    return `data-${state.seq}`;
  }

  function addChip(req) {
    const ul = $('#requests');
    const li = h('li', { class: 'chip pending', 'data-request-id': req.id });
    ul.prepend(li);
    while (ul.children.length > CFG.chipsMax) ul.lastElementChild.remove();
    return li;
  }

  function paintChip(li, req, phase, info) {
    li.className = `chip ${phase}`;
    li.dataset.data = req.data;
    li.dataset.state = phase;
    const parts = [h('span', { class: 'chip-icon', 'aria-hidden': 'true' }, phase === 'committed' ? '✓' : phase === 'error' ? '⚠' : ''),
      h('span', { class: 'chip-data', title: req.data }, req.data)];
    if (phase === 'pending') {
      parts.push(h('span', { class: 'chip-where' }, req.fault ? 'failing the primary, then sending…' : 'sending…'));
    } else if (phase === 'committed') {
      li.dataset.index = info.index; li.dataset.epoch = info.epoch; li.dataset.primary = info.primary;
      parts.push(h('span', { class: 'chip-where' }, 'committed at ', h('b', null, `#${show(info.index)}`), ` · epoch ${show(info.epoch)} · by `,
        h('b', { title: info.primary ? `id ${info.primary}` : null }, show(info.primary ? replicaName(info.primary) : info.primary)),
        info.failed ? h('span', { class: 'chip-fault' }, ` (${replicaName(info.failed)} failed first)`) : null));
    } else {
      parts.push(h('span', { class: 'chip-where', title: info.error }, info.error));
      if (info.retry) {
        parts.push(h('button', { type: 'button', class: 'btn btn-small', onclick: () => sendRequest(req) }, 'retry'));
      }
    }
    li.setAttribute('aria-label', `request ${req.data}: ${li.textContent}`);
    li.replaceChildren(...parts);
  }

  /* A request this page did not send (curl, another dashboard, this one before a
   * reload), from its events: a chip like ours, marked with where it came from. */
  function foreignRequest(ev) {
    const rq = ev.request;
    if (!rq || !rq.id || String(rq.id).startsWith(`web-${sessionTag}-`)) return;
    const ul = $('#requests');
    let li = [...ul.children].find((x) => x.dataset.requestId === rq.id);
    if (!li) {
      if (ev.type === 'request_sent' && state.replaying) return;   // its outcome follows in the history
      li = addChip({ id: rq.id });
      li.dataset.foreign = 'true';
    }
    const req = { id: rq.id, data: rq.data, fault: rq.fault };
    if (ev.type === 'request_committed') paintChip(li, req, 'committed', { index: rq.index ?? ev.index, epoch: rq.epoch ?? ev.epoch, primary: rq.primary || ev.replica });
    else if (ev.type === 'request_failed') paintChip(li, req, 'error', { error: ev.detail || 'failed' });
    else paintChip(li, req, 'pending');
    li.title = `sent by another client (id ${rq.id})`;
  }

  async function sendRequest(req) {
    const li = addChip(req);
    paintChip(li, req, 'pending');
    const body = { data: req.data, id: req.id, fault: !!req.fault };
    const res = await api('POST', '/api/requests', body, CFG.requestTimeoutMs);
    if (res.ok && res.body) {
      paintChip(li, req, 'committed', res.body);
      if (res.body.failed) toast(`${replicaName(res.body.failed)} failed; ${replicaName(res.body.primary)} processed ${req.data} at #${res.body.index}`);
    } else {
      const m = (res.body && res.body.error && res.body.error.message) || res.error;
      let error = `${res.status ? `${res.status}: ` : ''}${m}`;
      if (res.status === 503) error = `no primary (503): ${m}${res.retryAfter ? ` · retry in ${res.retryAfter}s` : ''}`;
      if (res.status === 504) error = `outcome unknown (504): ${m} · a retry with the same id is safe`;
      if (res.status === 413) error = `too large (413): ${m}`;
      paintChip(li, req, 'error', { error, retry: res.status === 0 || res.status === 503 || res.status === 504 });
    }
  }

  function submitFromForm(fault) {
    const input = $('#request-data');
    const typed = input.value.trim();
    const data = typed || nextData();
    bumpSeq(data);
    input.value = '';
    input.placeholder = `data-${state.seq + 1} (auto)`;
    sendRequest({ id: `web-${sessionTag}-${++clientCounter}`, data, fault });
  }

  async function failReplica(id) {
    if (!id) return;
    const res = await api('POST', `/api/replicas/${encodeURIComponent(id)}/fail`);
    if (res.ok) toast(`${replicaName((res.body && res.body.failed) || id)} failed on purpose; the supervisor restarts it`);
    else toast(`Could not fail ${replicaName(id)}: ${res.error}`, true);
  }

  /* The API's own words for a refused call: "message (409 no_quorum)". */
  function apiMessage(res) {
    const e = res.body && res.body.error;
    if (e && e.message) return `${e.message} (${res.status}${e.code ? ` ${e.code}` : ''})`;
    return res.error;
  }

  /* "Could not remove r3: <why>", unless the API's message already names r3
   * ("cannot remove r3: removing it would leave no reachable majority"). */
  function refusal(what, id, res) {
    const m = apiMessage(res);
    const e = res.body && res.body.error;
    if (e && e.message && e.message.includes(id)) return m.charAt(0).toUpperCase() + m.slice(1);
    return `Could not ${what} ${replicaName(id)}: ${m}`;
  }

  function askRemove(id) {
    if (!id) return;
    if (state.selected !== id) select(id);
    state.confirming = id;
    if (state.actionError && state.actionError.id === id) state.actionError = null;
    renderDetails();
    const no = dk('confirm-no');
    if (no && !dk('confirm').hidden) no.focus();
  }

  function cancelRemove() {
    state.confirming = null;
    renderDetails();
    const rb = dk('remove');
    if (rb && !rb.hidden) rb.focus();
  }

  async function removeReplica(id) {
    if (!id) return;
    const name = replicaName(id);
    const yes = dk('confirm-yes');
    if (yes) yes.disabled = true;
    const res = await api('DELETE', `/api/replicas/${encodeURIComponent(id)}`);
    state.confirming = null;
    if (res.ok) {
      state.actionError = null;
      state.removing.set(id, Date.now());
      toast(`Removing ${name}: it leaves once the configuration change commits`);
      announce(`Removing ${name} from the cluster`);
    } else {
      state.actionError = { id, text: refusal('remove', id, res) };
      toast(`Could not remove ${name}`, true);
    }
    renderAll();
  }

  async function failAndReplace(id) {
    if (!id) return;
    const name = replicaName(id);
    const res = await api('POST', `/api/replicas/${encodeURIComponent(id)}/fail?replace=true`);
    if (res.ok) {
      const b = res.body || {};
      if (b.replacement) state.adding.add(String(b.replacement));
      toast(`${replicaName(b.failed || id)} failed on purpose; ${b.replacement ? replicaName(b.replacement) : 'a new replica'} takes its place`);
    } else {
      state.actionError = { id, text: refusal('fail and replace', id, res) };
      toast(`Could not fail and replace ${name}`, true);
      renderAll();
    }
  }

  async function addReplica() {
    const btn = $('#btn-add-replica');
    btn.disabled = true;
    const res = await api('POST', '/api/replicas');
    btn.disabled = false;
    if (res.ok && res.body && res.body.id) {
      state.adding.add(String(res.body.id));
      toast(`Starting ${res.body.id}: it joins as a learner and becomes a voter once caught up`);
      announce(`Starting replica ${res.body.id}`);
    } else {
      toast(`Could not add a replica: ${apiMessage(res)}`, true);
    }
  }

  async function failPrimary() {
    const res = await api('POST', '/api/primary/fail');
    if (res.ok) toast(`primary ${res.body && res.body.failed ? replicaName(res.body.failed) : ''} failed on purpose; watch the election`);
    else toast(`Could not fail the primary: ${res.error}`, true);
  }

  // ================================================================ timeline

  const ICON = {
    elected: ['★', 'good'], stepped_down: ['↓', 'warn'], election_started: ['⚑', 'warn'],
    primary_lost: ['⚡', 'bad'], joined: ['+', 'learner'], caught_up: ['✓', 'learner'],
    committed: ['•', 'commit'], failed: ['✕', 'bad'], exited: ['↺', 'bad'], down: ['▼', 'bad'], up: ['▲', 'good'],
    request_sent: ['→', 'info'], request_committed: ['✓', 'good'], request_failed: ['⚠', 'bad'],
    local_lost: ['↻', 'warn'], local_back: ['⇄', 'good'],
    removed: ['−', 'warn'], handover: ['⇢', 'warn'], forced_config: ['⚠', 'alarm'], start_failed: ['✕', 'bad'],
    disk_full: ['⛁', 'bad'], disk_ok: ['⛁', 'good'], handshake_refused: ['⊘', 'alarm'],
    joined_view: ['◌', 'info'],
    fault_started: ['⚡', 'warn'], fault_added: ['⚡', 'warn'], fault: ['⚡', 'warn'],
    fault_healed: ['✓', 'good'], fault_expired: ['✓', 'good'], fault_removed: ['✓', 'good'],
    timing: ['◷', 'info'], timing_changed: ['◷', 'info'],
  };

  const b = (x) => h('b', null, show(x, '?'));

  /* Events name replicas as the circles do: "replica_name"/"subject_name" when the
   * event carries them, else the name last seen for that id, else the id. */
  function evName(ev, which) {
    const id = ev[which];
    if (!id) return '';
    const n = ev[`${which}_name`];
    if (n) { state.names.set(id, n); return n; }
    return replicaName(id);
  }
  function evWho(ev) { return ev.subject ? evName(ev, 'subject') : evName(ev, 'replica'); }

  function describe(ev) {
    const who = evWho(ev);
    const rep = evName(ev, 'replica'), subj = evName(ev, 'subject');
    const rq = ev.request || {};
    switch (ev.type) {
      case 'elected': return [b(who), ' elected primary', ev.epoch !== undefined ? ` in epoch ${ev.epoch}` : ''];
      case 'stepped_down': return [b(who), ' stepped down'];
      case 'election_started': return [b(who), ' started an election'];
      case 'primary_lost':
        return ev.subject && ev.replica && ev.subject !== ev.replica
          ? [b(rep), ' lost contact with primary ', b(subj)]
          : [b(who), ': primary lost'];
      case 'joined': return [b(who), ' joined as a learner'];
      case 'caught_up': return [b(who), ' caught up and became a voter'];
      case 'removed': return [b(who), ' left the configuration'];
      case 'handover':
        return ev.subject && ev.replica && ev.subject !== ev.replica
          ? ['primary ', b(rep), ' removed itself and hands over to ', b(subj)]
          : ['primary ', b(who), ' removed itself and hands over'];
      case 'forced_config':
        return [h('strong', { class: 'tl-alarm' }, 'UNSAFE forced recovery: '),
          b(rep || subj || 'a replica'), ' was made the only voter without a majority (replctl force-config).',
          ' Entries only the lost voters held may be gone.'];
      case 'joined_view': return [b(who), ' discovered'];
      case 'start_failed': return [b(who), ' keeps crashing at start: given up (not restarted again)'];
      case 'disk_full': return [b(who), '\u2019s disk is full: it stopped taking writes', ev.detail ? ` (${ev.detail})` : ''];
      case 'disk_ok': return [b(who), ' can write its log again and resumes'];
      case 'handshake_refused':
        return [b(who), ' turned a connection away in its handshake', ev.detail ? `: ${ev.detail}` : ''];
      case 'committed': return ['commit index → ', b(ev.index)];
      case 'failed': return [b(who), ' failed'];
      case 'down': return [b(who), ' is unreachable (down)'];
      case 'exited': return [b(who), ' exited'];
      case 'up': return [b(who), ' is up'];
      case 'request_sent': return [rq.fault ? 'fault request ' : 'request ', b(rq.data), ' sent'];
      case 'request_committed': return [b(rq.data), ' committed at ', b(`#${show(rq.index ?? ev.index)}`), ' by ', b(rq.primary ? replicaName(rq.primary) : rep)];
      case 'request_failed': return ['request ', b(rq.data), ' failed'];
      case 'local_lost': return ['connection to the coordinator lost'];
      case 'fault_started': case 'fault_added': case 'fault':
        return ['fault: ', b(ev.fault && window.ReplFaults ? window.ReplFaults.describe(ev.fault) : ev.type)];
      case 'fault_healed': case 'fault_expired': case 'fault_removed':
        return [ev.type === 'fault_expired' || /: expired$/.test(ev.detail || '') ? 'fault expired: ' : 'fault healed: ',
          b(ev.fault && ev.fault.kind && window.ReplFaults ? window.ReplFaults.describe(ev.fault) : (ev.fault && ev.fault.id) || '')];
      case 'timing': case 'timing_changed': {
        const k = /^slow motion x(\d+)$/.exec(ev.detail || '');
        return ['timing: ', b(k ? (k[1] === '1' ? 'normal speed' : `slow motion ×${k[1]}`)
          : ev.timing && ev.timing.heartbeat_ms ? `heartbeat ${ev.timing.heartbeat_ms} ms` : ev.detail || 'changed')];
      }
      case 'local_back': return ['reconnected; state resynced from a fresh snapshot'];
      default: return [b(ev.type), who ? ` · ${who}` : ''];
    }
  }

  /* A detail that only says again what the text says ("joined as a learner — added as learner"). */
  const SAID = { joined: ['added as learner'], caught_up: ['promoted to voter'], joined_view: ['discovered'] };
  function redundantDetail(type, detail, text) {
    const d = String(detail).trim().toLowerCase();
    if ((SAID[type] || []).includes(d)) return true;
    const said = h('span', null, ...text).textContent.toLowerCase();
    return said.includes(d);
  }

  function addEvent(ev) {
    const ol = $('#timeline');
    const [icon, kind] = ICON[ev.type] || ['•', 'info'];

    // consecutive commits collapse into one row
    if (ev.type === 'committed') {
      const top = ol.firstElementChild;
      if (top && top.dataset.type === 'committed') {
        const n = Number(top.dataset.count) + 1;
        top.dataset.count = n;
        const from = top.dataset.from;
        top.querySelector('.tl-text').replaceChildren('commit index → ', b(ev.index), h('span', { class: 'tl-x' }, ` (${n} commits from #${from})`));
        top.querySelector('.tl-time').textContent = fmtClock(ev.time_ms);
        return;
      }
    }

    // many replicas noticing the same lost primary collapse into one row
    if (ev.type === 'primary_lost' && ev.subject && ev.replica) {
      const top = ol.firstElementChild;
      if (top && top.dataset.type === 'primary_lost' && top.dataset.subject === ev.subject &&
          Math.abs((ev.time_ms || 0) - Number(top.dataset.time)) < 3000) {
        const who = top.dataset.reporters.split(',');
        if (!who.includes(ev.replica)) who.push(ev.replica);
        top.dataset.reporters = who.join(',');
        evName(ev, 'replica');
        const nm = who.map(replicaName);
        const names = nm.length <= 3 ? nm.join(', ') : `${nm.slice(0, 2).join(', ')} and ${nm.length - 2} more`;
        top.querySelector('.tl-text').replaceChildren(b(names), ' lost contact with primary ', b(evName(ev, 'subject')),
          ev.detail ? h('span', { class: 'tl-detail' }, ` — ${ev.detail}`) : '');
        return;
      }
    }

    const meta = [h('time', { class: 'tl-time', datetime: new Date(ev.time_ms || Date.now()).toISOString() }, fmtClock(ev.time_ms))];
    if (num(ev.epoch) > 0) meta.push(h('span', null, `epoch ${ev.epoch}`));
    if (num(ev.index) > 0 && ev.type !== 'committed') meta.push(h('span', null, `#${ev.index}`));
    if (ev.replica && ev.subject && ev.replica !== ev.subject &&
        !['primary_lost', 'handover', 'forced_config'].includes(ev.type)) meta.push(h('span', null, `reported by ${evName(ev, 'replica')}`));
    if (ev.type === 'elected' && num(ev.failover_ms) !== null) {
      meta.unshift(h('span', { class: 'tl-failover', title: 'time from the previous primary failing to this election' },
        `failover ${fmtDuration(ev.failover_ms)}`));
    }
    const text = describe(ev);
    let detail = ev.detail || (ev.type === 'request_failed' && ev.request && ev.request.detail);
    if (detail && redundantDetail(ev.type, detail, text)) detail = '';
    if (/^(fault|timing)/.test(ev.type) && (ev.fault || /^slow motion x\d+$/.test(detail || ''))) detail = '';   // said in the text
    const li = h('li', { class: `tl k-${kind}`, 'data-type': ev.type, role: ev.type === 'forced_config' ? 'alert' : null },
      h('span', { class: 'tl-icon', 'aria-hidden': 'true' }, icon),
      h('div', { class: 'tl-text' }, ...text, detail ? h('span', { class: 'tl-detail' }, ` — ${detail}`) : null),
      h('div', { class: 'tl-meta' }, ...meta));
    if (ev.type === 'committed') { li.dataset.count = 1; li.dataset.from = ev.index; }
    if (ev.type === 'primary_lost') { li.dataset.subject = ev.subject || ''; li.dataset.reporters = ev.replica || ''; li.dataset.time = ev.time_ms || 0; }
    ol.prepend(li);
    while (ol.children.length > CFG.timelineMax) ol.lastElementChild.remove();
  }

  // A request's commit already says "committed at #N": the bare commit-index row
  // for the same N would only repeat it.
  const requestIndices = new Set();

  function onEvent(ev) {
    if (!ev || !ev.type) return;
    const ri = ev.type === 'request_committed' && ev.request ? num(ev.request.index ?? ev.index) : null;
    if (ri !== null) {
      requestIndices.add(ri);
      if (requestIndices.size > 200) requestIndices.delete(requestIndices.values().next().value);
      const top = $('#timeline').firstElementChild;
      if (top && top.dataset.type === 'committed' && top.dataset.count === '1' && Number(top.dataset.from) === ri) top.remove();
    }
    if (!(ev.type === 'committed' && requestIndices.has(num(ev.index)))) addEvent(ev);
    const rq = ev.request;
    if (rq) { bumpSeq(rq.data); foreignRequest(ev); }
    if (ev.type === 'elected' && num(ev.failover_ms) !== null) $('#stat-failover').textContent = fmtDuration(ev.failover_ms);
    if (state.replaying) return;   // the past: no bursts, toasts or announcements
    if (/^(fault|timing)/.test(ev.type) && window.ReplFaults) window.ReplFaults.refresh();
    switch (ev.type) {
      case 'elected': {
        const who = evWho(ev);
        burst(ev.subject || ev.replica, 'good');
        if (num(ev.failover_ms) !== null) {
          const f = $('#stat-failover');
          f.textContent = fmtDuration(ev.failover_ms);
          f.classList.add('fresh');
          setTimeout(() => f.classList.remove('fresh'), 6000);
        }
        announce(`${who} elected primary${ev.epoch !== undefined ? ` in epoch ${ev.epoch}` : ''}${num(ev.failover_ms) !== null ? `, failover took ${fmtDuration(ev.failover_ms)}` : ''}`);
        break;
      }
      case 'failed': case 'down':
        burst(ev.subject || ev.replica, 'bad');
        announce(`${evWho(ev)} ${ev.type === 'failed' ? 'failed' : 'is down'}`);
        break;
      case 'removed':
        if (ev.subject) state.removedIds.add(ev.subject);
        break;
      case 'forced_config':
        toast(`UNSAFE forced recovery by ${evName(ev, 'replica') || 'a replica'}: acknowledged writes may be lost`, true);
        break;
      case 'start_failed':
        burst(ev.subject || ev.replica, 'bad');
        toast(`${evWho(ev)} keeps crashing at start and was given up`, true);
        break;
      case 'committed': case 'request_committed':
        pulse();
        break;
      default: break;
    }
    if (state.selected && (ev.replica === state.selected || ev.subject === state.selected ||
        ev.type === 'committed' || ev.type === 'request_committed' || ev.type === 'elected')) {
      scheduleDetailsFetch();
    }
  }

  // ================================================================ rendering

  let rafPending = false;
  function renderAll() {
    if (rafPending) return;
    rafPending = true;
    requestAnimationFrame(() => {
      rafPending = false;
      renderHeader();
      renderCluster();
      renderTable();
      renderDetails();
      state.prev = state.cluster;
    });
  }

  /* The coordinator's history, on connect: the events list, the request chips and
   * the last failover as they were, whatever this page saw before (a reload). */
  function applyHistory(h) {
    const fresh = H ? H.ingestHistory(h) : [];
    state.replaying = true;
    try {
      const list = fresh.slice(-CFG.timelineMax * 3);
      for (const ev of list) onEvent(ev);
    } finally {
      state.replaying = false;
    }
    const lf = H && H.lastFailover();
    if (lf) {
      const f = $('#stat-failover');
      f.textContent = fmtDuration(lf.failover_ms);
      f.title = `${replicaName(lf.previous_primary)} → ${replicaName(lf.subject || lf.replica)} at ${fmtClock(lf.time_ms)}, epoch ${show(lf.epoch)}`;
    }
    renderAll();
  }

  /* The timeline was scrubbed to t (null: back to live): the ring, header and
   * table show the cluster as it was, rebuilt from the recorded past. */
  function scrubTo(t) {
    if (t === null) {
      state.past = null;
      document.body.dataset.past = '';
      $('#past-banner').hidden = true;
      if (state.live) state.cluster = state.live;
      renderAll();
      return;
    }
    const c = H.stateAt(t);
    if (state.past === null && state.selected) closeDetails();
    if (window.ReplMessages) window.ReplMessages.clear();
    state.past = t;
    document.body.dataset.past = 'true';
    const b = $('#past-banner');
    b.hidden = false;
    $('#past-text').textContent = c
      ? `The cluster as it was at ${fmtClock(t)}${c.primary ? `: ${replicaName(c.primary)} primary in epoch ${show(c.epoch)}` : ': no primary'} (rebuilt from the recorded events).`
      : `Nothing recorded that far back (${fmtClock(t)}).`;
    if (c) { for (const r of c.replicas) if (!r.name) r.name = replicaName(r.id); state.cluster = c; }
    renderAll();
  }

  function applyCluster(c) {
    if (!c || !Array.isArray(c.replicas)) return;
    state.live = c;
    if (window.ReplFaults) window.ReplFaults.fromCluster(c);
    if (state.past !== null) return;   // scrubbed back: the live view waits for "Live"
    state.cluster = c;
    for (const r of c.replicas) state.names.set(r.id, r.name || r.id);
    trackMembership(c);
    renderAll();
    if (state.selected && detailSignature() !== state.detailSig) scheduleDetailsFetch();
  }

  /* Follow up on membership calls as snapshots show their outcome (no polling). */
  function trackMembership(c) {
    const m = membership(c);
    const byRid = new Map(c.replicas.map((r) => [r.id, r]));
    for (const [id, since] of state.removing) {
      const r = byRid.get(id);
      if (!r || outsider(memberKind(r, m))) {
        state.removing.delete(id);
        state.removedIds.add(id);
        announce(`${replicaName(id)} left the cluster`);
      } else if (Date.now() - since > 60000) {
        state.removing.delete(id);   // the change never showed up; let the user try again
      }
    }
    for (const id of state.adding) {
      const r = byRid.get(id);
      if (r && memberKind(r, m) === 'voter') {
        state.adding.delete(id);
        announce(`${replicaName(id)} caught up and is now a voter`);
      }
    }
    if (state.confirming && !byRid.has(state.confirming)) state.confirming = null;
  }

  // ================================================================ WebSocket

  let ws = null, attempt = 0, retryTimer = null, countdownTimer = null, retryAt = 0;

  function wsUrl() {
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/ws`;
    return window.ReplAuth ? window.ReplAuth.wsUrl(url) : url;
  }

  function setConn(kind, text) {
    const c = $('#conn');
    c.dataset.state = kind;
    $('#conn-text').textContent = text;
    wrap.classList.toggle('stale', kind === 'reconnecting');
    document.body.dataset.conn = kind;
  }

  function connect() {
    clearTimeout(retryTimer); retryTimer = null;
    clearInterval(countdownTimer); countdownTimer = null;
    if (ws) { ws.onclose = null; ws.onmessage = null; try { ws.close(); } catch (_) { /* already closed */ } }
    if (attempt > 0) $('#banner-text').textContent = `Connection to the coordinator lost. Reconnecting now (attempt ${attempt})…`;
    let sock;
    try { sock = new WebSocket(wsUrl()); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      const wasDown = state.everConnected && !state.connected;
      state.connected = true;
      state.everConnected = true;
      attempt = 0;
      setConn('live', 'live');
      $('#banner').hidden = true;
      if (wasDown) {
        addEvent({ type: 'local_back', time_ms: Date.now() });
        toast('Reconnected to the coordinator');
        scheduleDetailsFetch(true);
      }
    };
    sock.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (_) { return; }
      if (msg.type === 'cluster') { if (H) H.ingestLive(msg.cluster); applyCluster(msg.cluster); }
      else if (msg.type === 'history') applyHistory(msg);
      else if (msg.type === 'event') {
        if (H && !H.ingestEvent(msg.event, msg.seq)) return;   // had it from the history
        onEvent(msg.event);
      }
      else if (msg.type === 'messages') { lastMessages = performance.now(); if (window.ReplMessages) window.ReplMessages.ingest(msg); }
      else if (msg.type === 'faults' || msg.type === 'timing') { if (window.ReplFaults) window.ReplFaults.fromStream(msg); }
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      if (state.connected) addEvent({ type: 'local_lost', time_ms: Date.now() });
      state.connected = false;
      scheduleReconnect();
    };
    sock.onerror = () => { /* onclose follows and reconnects */ };
  }

  function scheduleReconnect() {
    if (window.ReplAuth && window.ReplAuth.waiting()) {
      // Refused for want of the token (the form is up): no "connection
      // lost" banner; the login connects again.
      clearTimeout(retryTimer); retryTimer = null;
      clearInterval(countdownTimer); countdownTimer = null;
      $('#banner').hidden = true;
      setConn('connecting', 'waiting for the API token');
      return;
    }
    attempt += 1;
    const base = Math.min(CFG.backoffMaxMs, CFG.backoffBaseMs * 2 ** (attempt - 1));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    retryAt = Date.now() + delay;
    setConn('reconnecting', 'reconnecting…');
    const banner = $('#banner');
    banner.hidden = false;
    const tick = () => {
      const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      $('#banner-text').textContent =
        `Connection to the coordinator lost. Reconnecting${s > 0 ? ` in ${s} s` : ''} (attempt ${attempt})… The view below is stale.`;
    };
    tick();
    clearInterval(countdownTimer);
    countdownTimer = setInterval(tick, 500);
    retryTimer = setTimeout(connect, delay);
  }

  // ================================================================ boot

  async function seedSequence() {
    const c = await api('GET', '/api/cluster');
    if (c.ok && c.body && !state.cluster) applyCluster(c.body);
    const ci = num(c.ok && c.body && c.body.commit_index) || 0;
    const r = await api('GET', `/api/requests?after=${Math.max(0, ci - 1000)}&limit=1000`);
    if (r.ok && r.body && Array.isArray(r.body.entries)) for (const e of r.body.entries) bumpSeq(e.data);
    $('#request-data').placeholder = `data-${state.seq + 1} (auto)`;
  }

  $('#request-form').addEventListener('submit', (e) => { e.preventDefault(); submitFromForm(false); });
  $('#btn-fault').addEventListener('click', () => submitFromForm(true));
  $('#btn-fail-primary').addEventListener('click', failPrimary);
  $('#btn-add-replica').addEventListener('click', addReplica);
  $('#banner-retry').addEventListener('click', () => { attempt = Math.max(0, attempt); connect(); });
  $('#show-commits').addEventListener('change', (e) => $('#timeline').classList.toggle('hide-commits', !e.target.checked));
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || e.target.closest('input')) return;
    if (state.confirming) cancelRemove();
    else if (state.selected) closeDetails();
  });
  new ResizeObserver(() => { if (state.cluster) renderAll(); }).observe(wrap);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) renderAll(); });

  if (window.ReplTimeline) {
    window.ReplTimeline.init({
      card: $('#scrub-card'),
      onScrub: scrubTo,
      nameOf: (id) => (id ? replicaName(id) : '?'),
      shortName: (id, name) => shortName({ id, name: replicaName(id) || name }, 11),
      activeFaults: () => state.faults,
    });
  }
  $('#past-live').addEventListener('click', () => window.ReplTimeline && window.ReplTimeline.scrub(null));
  // A failure shown for a few seconds after its replica is back must also go
  // when nothing else changes.
  setInterval(() => { if (state.cluster && state.past === null && !document.hidden) renderAll(); }, 1000);
  if (window.ReplFaults) {
    window.ReplFaults.init({
      api, toast, announce, replicaName,
      replicas: () => (state.live || state.cluster || { replicas: [] }).replicas,
      onFaults: (faults) => { state.faults = faults; renderAll(); if (window.ReplTimeline) window.ReplTimeline.render(); },
    });
  }

  if (window.ReplMessages) {
    const pairOf = (a, b) => (state.pairFaults || new Map()).get(a < b ? `${a}|${b}` : `${b}|${a}`);
    window.ReplMessages.init({
      layer: gMsgs.node(),
      pos: (id) => layout.pos.get(id),
      radius: () => layout.r,
      live: () => state.past === null,
      cut: (a, b) => { const p = pairOf(a, b); return !!(p && p.cut); },
      delay: (a, b) => { const p = pairOf(a, b); return p ? p.delay : 0; },
      slow: () => (window.ReplFaults ? window.ReplFaults.slowFactor() : 1),
      heartbeat: () => { const t = window.ReplFaults && window.ReplFaults.timing(); return t ? num(t.heartbeat_ms) : null; },
    });
  }

  setConn('connecting', 'connecting…');
  connect();
  seedSequence();
  // A WebSocket refused for want of the token just closes (a browser shows
  // no status): once the token is in, connect again at once.
  if (window.ReplAuth) window.ReplAuth.onLogin(() => { if (!state.connected) { attempt = 0; connect(); } });
  window.__dashboard = state;  // for debugging and tests
})();

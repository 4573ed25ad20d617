/* replicacao dashboard: the recorded past.
 *
 * One job: keep what happened (events and cluster snapshots, from the
 * coordinator's history on connect and from the live stream after it) and
 * answer questions about it: what a replica was doing at any moment (the
 * timeline's lanes and the ring when scrubbed back), and which failures are
 * still to be shown. No drawing here (timeline.js draws, app.js renders the
 * ring).
 *
 * Exposes window.ReplHistory.
 */
(function () {
  'use strict';

  const CFG = {
    maxMarks: 20000,     // events and snapshots kept in the browser (the coordinator keeps its own ring)
    holdMs: 8000,        // a failure stays red this long after its replica is back: long enough to see
  };

  /* A time-ordered list of marks: {t, seq, ev} (an event) or {t, seq, snap} (a snapshot). */
  const marks = [];
  let lastSeq = 0;            // the highest event seq seen (0: the coordinator numbers none)
  let lastFailover = null;    // the newest elected event with failover_ms
  let shape = '';             // of the last snapshot kept from the live stream
  let shapeAt = 0;
  const incidents = new Map();   // id -> {what, role, since, back, detail}: the latest failure of each replica
  const lastRole = new Map();    // id -> the role it had when last seen up and answering
  const listeners = new Set();

  function push(m) {
    // Nearly always in order; a late one (history after a few live snapshots) is inserted.
    let i = marks.length;
    while (i > 0 && marks[i - 1].t > m.t) i--;
    marks.splice(i, 0, m);
    if (marks.length > CFG.maxMarks) marks.splice(0, marks.length - CFG.maxMarks);
  }

  function changed() { for (const f of listeners) f(); }

  /* What a failure event says happened, in the words a circle shows. */
  function failureOf(ev) {
    if (ev.type === 'failed') return 'failed';
    if (ev.type === 'down') return 'down';
    if (ev.type === 'start_failed') return 'crashed at start';
    if (ev.type === 'exited') {
      const sig = /signal (\d+)/.exec(ev.detail || '');
      const st = /status (-?\d+)/.exec(ev.detail || '');
      if (sig && Number(sig[1]) === 9) return 'killed';
      if (sig && Number(sig[1]) === 15) return 'stopped';
      if (sig && Number(sig[1]) > 0) return `killed (signal ${sig[1]})`;
      if (st && Number(st[1]) === 75) return 'failed';
      return st ? `exited (status ${st[1]})` : 'exited';
    }
    return null;
  }
  // A later event may say more about the same failure: "down" (the connection closed)
  // becomes "killed" once the supervisor reports the signal; "failed" on request stays.
  const WEIGHT = { down: 1, frozen: 1, stopped: 2, exited: 2, killed: 3, failed: 4 };
  const weight = (w) => WEIGHT[String(w).split(' ')[0]] || 2;

  function openIncident(id, what, t, detail) {
    const cur = incidents.get(id);
    if (cur && !cur.back) {
      if (weight(what) > weight(cur.what)) { cur.what = what; if (detail) cur.detail = detail; }
      return;
    }
    incidents.set(id, { id, what, role: lastRole.get(id) || 'replica', since: t, back: null, detail: detail || '' });
  }

  function closeIncident(id, t) {
    const cur = incidents.get(id);
    if (cur && !cur.back) cur.back = t;
  }

  function ingestEvent(ev, seq) {
    if (!ev || !ev.type) return false;
    if (seq !== undefined && seq !== null) {
      if (seq <= lastSeq) return false;   // had it already (history and live overlap)
      lastSeq = seq;
    }
    const t = ev.time_ms || Date.now();
    push({ t, seq, ev });
    const id = ev.subject || ev.replica;
    const what = failureOf(ev);
    if (what && id) openIncident(id, what, t, ev.detail);
    if (ev.type === 'up' && id) closeIncident(id, t);
    if (ev.type === 'elected' && typeof ev.failover_ms === 'number') lastFailover = ev;
    return true;
  }

  function answering(r) { return r.status === 'up' && r.answering !== false; }
  /* Connected, answered before, and no longer answers (SIGSTOP, a pause). One that
   * just connected and has not answered yet (status_age_ms -1) is not frozen. */
  function frozen(r) { return r.status === 'up' && r.answering === false && r.status_age_ms !== -1; }

  /* A cluster (a live snapshot, or a recorded compact one) at time t: what the
   * incidents and last roles learn from it. */
  function observe(c, t) {
    for (const r of c.replicas || []) {
      if (answering(r)) {
        const cur = incidents.get(r.id);
        if (cur && !cur.back) cur.back = t;
        if (r.role && r.role !== 'candidate') lastRole.set(r.id, r.role);
      } else if (frozen(r)) {
        openIncident(r.id, 'frozen', t, 'connected but not answering');
      } else if (r.status === 'up') {
        // connected, not answered yet: neither failed nor back
      } else {
        openIncident(r.id, r.status === 'failed' ? 'failed' : 'down', t);
      }
    }
  }

  const shapeOf = (c) => `${c.primary || ''};${(c.replicas || []).map((r) => `${r.id}/${r.role}/${r.status}/${r.epoch}/${!frozen(r)}`).join(';')}`;

  function compact(c, t) {
    return {
      type: 'snapshot', time_ms: t, epoch: c.epoch, primary: c.primary, commit_index: c.commit_index,
      quorum: c.quorum, voters: c.voters, learners: c.learners,
      replicas: (c.replicas || []).map((r) => ({
        id: r.id, name: r.name, role: r.role, status: r.status, epoch: r.epoch,
        commit_index: r.commit_index, voter: r.voter, answering: r.answering, status_age_ms: r.status_age_ms,
      })),
    };
  }

  /* A live cluster message: learn from it, and keep a compact copy when the
   * roles changed (or every 5 s) so the lanes go on between recorded ones. */
  function ingestLive(c) {
    const t = Date.now();
    observe(c, t);
    const s = shapeOf(c);
    if (s !== shape || t - shapeAt >= 5000) {
      shape = s; shapeAt = t;
      push({ t, snap: compact(c, t) });
      changed();
    }
  }

  /* The coordinator's history message: everything it kept, oldest first.
   * A coordinator that restarted numbers from 1 again: start over. */
  function ingestHistory(h) {
    if (!h || !Array.isArray(h.entries)) return [];
    if (typeof h.last_seq === 'number' && h.last_seq < lastSeq) {
      marks.length = 0; lastSeq = 0; incidents.clear();
    }
    const fresh = [];
    for (const e of h.entries) {
      // Events and snapshots share one numbering: what is not above the last seen, we have.
      if (typeof e.seq === 'number') { if (e.seq <= lastSeq) continue; lastSeq = e.seq; }
      if (e.type === 'snapshot') {
        push({ t: e.time_ms, seq: e.seq, snap: e });
        observe(e, e.time_ms);
      } else if (e.type === 'event' && ingestEvent(e.event)) {
        fresh.push(e.event);
      }
    }
    if (h.last_failover && h.last_failover.event &&
        (!lastFailover || (h.last_failover.event.time_ms || 0) > (lastFailover.time_ms || 0))) {
      lastFailover = h.last_failover.event;
    }
    changed();
    return fresh;
  }

  /* The failure to show on a replica now: an open one, or one that ended less
   * than holdMs ago. */
  function incidentShown(id, now = Date.now()) {
    const i = incidents.get(id);
    if (!i) return null;
    if (!i.back || now - i.back < CFG.holdMs) return i;
    return null;
  }

  /* Apply one event to a reconstructed cluster (replicas by id). */
  function applyEvent(st, ev) {
    const id = ev.subject || ev.replica;
    const r = id && st.byId.get(id);
    const what = failureOf(ev);
    if (r && what) {
      if (!r.what) r.wasRole = r.role;   // what it was when it went: a killed primary stays "primary, killed"
      r.status = ev.type === 'failed' || what === 'failed' ? 'failed' : 'down';
      r.what = weight(what) >= weight(r.what || '') ? what : r.what;
    }
    if (r && ev.type === 'up') { r.status = 'up'; r.what = null; }
    if (ev.type === 'elected' && r) {
      for (const o of st.byId.values()) if (o !== r && o.role === 'primary' && (o.epoch || 0) < ev.epoch) o.role = 'backup';
      r.role = 'primary'; r.epoch = ev.epoch; r.status = 'up'; r.what = null;
      st.primary = r.id; st.epoch = Math.max(st.epoch || 0, ev.epoch || 0);
    }
    if (ev.type === 'stepped_down' && r) { r.role = 'backup'; if (st.primary === r.id) st.primary = null; }
    if (ev.type === 'election_started' && r) r.role = 'candidate';
    if ((ev.type === 'committed' || ev.type === 'request_committed') && (ev.index || 0) > (st.commit_index || 0)) st.commit_index = ev.index;
    if (r && what && st.primary === r.id) st.primary = null;
  }

  function fromSnapshot(s) {
    const byId = new Map();
    for (const r of s.replicas || []) byId.set(r.id, { ...r, what: frozen(r) ? 'frozen' : null });
    return { epoch: s.epoch, primary: s.primary, commit_index: s.commit_index, quorum: s.quorum,
      voters: s.voters, learners: s.learners, byId };
  }

  /* The cluster as it was at time t: the last snapshot before it, and every
   * event after that snapshot up to t. null when nothing that old is kept. */
  function stateAt(t) {
    let si = -1;
    for (let i = marks.length - 1; i >= 0; i--) if (marks[i].snap && marks[i].t <= t) { si = i; break; }
    if (si < 0) return null;
    const st = fromSnapshot(marks[si].snap);
    for (let i = si + 1; i < marks.length && marks[i].t <= t; i++) {
      if (marks[i].ev) applyEvent(st, marks[i].ev);
      else if (marks[i].snap) {
        const n = fromSnapshot(marks[i].snap);
        for (const [id, r] of n.byId) { const o = st.byId.get(id); if (o && o.what && r.status !== 'up') { r.what = o.what; r.wasRole = o.wasRole; } }
        Object.assign(st, n);
      }
    }
    const voters = st.voters || [];
    const replicas = [...st.byId.values()];
    return {
      recorded_at: t, epoch: st.epoch, primary: st.primary, commit_index: st.commit_index,
      quorum: st.quorum, voters, learners: st.learners || [],
      reachable_voters: replicas.filter((r) => voters.includes(r.id) && r.status === 'up' && !r.what).length,
      replicas,
    };
  }

  /* One lane per replica: [{id, name, segs:[{t0, t1, cls, role, status, epoch, what}]}]
   * from `from` to `to`, a segment per stretch of the same role, status and epoch
   * (cls: the role when up and answering, else "failed"). */
  function lanes(from, to) {
    const out = new Map();
    let st = null, at = 0;   // the state in force since `at`
    const emit = (t0, t1) => {
      const a = Math.max(t0, from), b = Math.min(t1, to);
      if (b <= a) return;
      for (const r of st.byId.values()) {
        let lane = out.get(r.id);
        if (!lane) { lane = { id: r.id, name: r.name || r.id, segs: [] }; out.set(r.id, lane); }
        if (r.name) lane.name = r.name;
        const cls = r.status === 'up' && !r.what ? r.role || 'backup' : 'failed';
        const key = `${cls}|${r.epoch}|${r.what || ''}`;
        const last = lane.segs[lane.segs.length - 1];
        if (last && last.key === key && last.t1 >= a) last.t1 = b;
        else lane.segs.push({ key, t0: a, t1: b, cls, role: r.what ? r.wasRole || r.role : r.role, status: r.status, epoch: r.epoch, what: r.what });
      }
    };
    for (const m of marks) {
      if (m.t > to) break;
      if (st) emit(at, m.t);
      if (m.snap) {
        const n = fromSnapshot(m.snap);
        // What events said about a replica that is still not up (why it went) stays.
        if (st) for (const [id, r] of n.byId) { const o = st.byId.get(id); if (o && o.what && r.status !== 'up') { r.what = o.what; r.wasRole = o.wasRole; } }
        st = n;
      } else if (st) applyEvent(st, m.ev);
      at = m.t;
    }
    if (st) emit(at, to);
    return [...out.values()].sort((x, y) => String(x.id).localeCompare(String(y.id), undefined, { numeric: true }));
  }

  /* Events of some types between two times. */
  function events(from, to, pred) {
    const out = [];
    for (const m of marks) {
      if (m.t < from || !m.ev) continue;
      if (m.t > to) break;
      if (!pred || pred(m.ev)) out.push(m.ev);
    }
    return out;
  }

  /* Fault windows from fault events: {id, kind, fault, t0, t1 (null: still active)}.
   * A fault event carries the fault object ({"id","kind",...}); one whose type says
   * it ended (healed, expired, removed) closes the window. */
  function faultWindows(activeNow) {
    const open = new Map(), out = [];
    for (const m of marks) {
      const ev = m.ev;
      if (!ev || !/^fault/.test(ev.type)) continue;
      const f = ev.fault || {};
      const id = f.id || ev.id || ev.fault_id;
      if (!id) continue;
      if (/heal|end|expire|remove|clear|stop/.test(ev.type)) {
        const w = open.get(id);
        if (w) { w.t1 = m.t; open.delete(id); }
      } else if (!open.has(id)) {
        const w = { id, kind: f.kind || ev.kind || ev.type.replace(/^fault_?/, ''), fault: f, t0: m.t, t1: null };
        open.set(id, w); out.push(w);
      }
    }
    // Faults the API lists as active but whose start is not recorded (older than the history).
    for (const f of activeNow || []) {
      if (!out.some((w) => w.id === f.id)) out.push({ id: f.id, kind: f.kind, fault: f, t0: marks.length ? marks[0].t : Date.now(), t1: null });
    }
    // One the API no longer lists has ended, even if its end was not recorded.
    if (activeNow) for (const w of out) if (w.t1 === null && !activeNow.some((f) => f.id === w.id)) w.t1 = Date.now();
    return out;
  }

  window.ReplHistory = {
    CFG,
    ingestEvent, ingestLive, ingestHistory, incidentShown, stateAt, lanes, events, faultWindows,
    lastRole: (id) => lastRole.get(id),
    lastFailover: () => lastFailover,
    firstTime: () => (marks.length ? marks[0].t : null),
    size: () => marks.length,
    onChange: (f) => listeners.add(f),
  };
})();

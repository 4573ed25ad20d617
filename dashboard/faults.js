/* replicacao dashboard: the fault lab's controls.
 *
 * One job: the forms that start faults (partition, isolate, slow or cut a
 * link, pause a replica), heal them, and switch slow motion, against the
 * API of the "Fault lab" contract (POST/GET/DELETE /api/faults, PUT
 * /api/timing); the list of active faults and the timing in force. What the
 * faults look like on the ring and the timeline is app.js's and
 * timeline.js's, from the list this module hands over (onFaults). A
 * coordinator without the endpoints (404) gets a clear note and disabled
 * controls, not errors.
 *
 * Exposes window.ReplFaults.
 */
(function () {
  'use strict';

  let o = null;
  let available = null;   // null: not asked yet; false: the coordinator has no fault lab
  let faults = [];
  let timing = null;
  let refreshTimer = null;
  const $ = (sel) => document.querySelector(sel);
  const card = () => $('#lab-card');

  function setAvailable(ok, why) {
    available = ok;
    const note = $('#lab-unavailable');
    note.hidden = ok;
    if (!ok) note.textContent = why;
    card().dataset.available = ok ? 'true' : 'false';
    for (const el of card().querySelectorAll('button, select, input')) el.disabled = !ok;
  }

  function msg(res) {
    return (res.body && res.body.error && res.body.error.message) || res.error || `HTTP ${res.status}`;
  }

  const NOT_THERE = 'The fault lab is not available on this coordinator (it answers 404 to /api/faults): ' +
    'partitions, pauses, slow links and slow motion need a coordinator and replicas with the fault engine.';

  async function refresh() {
    clearTimeout(refreshTimer);
    const res = await o.api('GET', '/api/faults');
    if (res.status === 404) { setAvailable(false, NOT_THERE); faults = []; timing = null; render(); o.onFaults(faults); return; }
    if (!res.ok || !res.body) { $('#lab-timing').textContent = `fault list unavailable: ${msg(res)}`; return; }
    setAvailable(true);
    faults = Array.isArray(res.body.faults) ? res.body.faults : [];
    timing = res.body.timing || null;
    render();
    o.onFaults(faults);
    // A fault that expires by itself ends without anybody asking: look again then.
    const next = faults.map((f) => Number(f.expires_in_ms ?? f.duration_ms ?? f.ms)).filter((v) => v > 0);
    if (next.length) refreshTimer = setTimeout(refresh, Math.min(...next) + 200);
  }

  function describe(f) {
    const n = (id) => o.replicaName(id);
    switch (f.kind) {
      case 'partition': return `partition ${(f.groups || []).map((g) => `{${g.map(n).join(', ')}}`).join(' | ')}`;
      case 'isolate': return `${n(f.replica)} isolated`;
      case 'link': {
        const [a, b] = f.between || [];
        const cut = Number(f.loss) >= 1;
        return `${n(a)} ↔ ${n(b)}: ${cut ? 'cut' : [f.delay_ms ? `+${f.delay_ms} ms` : '', f.loss ? `${Math.round(f.loss * 100)}% lost` : ''].filter(Boolean).join(', ') || 'no effect'}`;
      }
      case 'pause': return `${n(f.replica)} paused${f.ms ? ` for ${f.ms} ms` : ''}`;
      default: return `${f.kind}`;
    }
  }

  function timingText(t) {
    if (!t) return '';
    const k = Number(t.slow_motion);
    return `heartbeat ${t.heartbeat_ms} ms · election ${t.election_min_ms}–${t.election_max_ms} ms${k > 1 ? ` (slow motion ×${k})` : t.slow_motion === null ? ' (set by hand)' : ''}`;
  }

  function render() {
    const ul = $('#lab-faults');
    ul.replaceChildren(...faults.map((f) => {
      const li = document.createElement('li');
      li.dataset.id = f.id; li.dataset.kind = f.kind;
      const t = document.createElement('span');
      t.textContent = describe(f);
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'btn btn-small'; b.textContent = 'heal';
      b.setAttribute('aria-label', `heal ${describe(f)}`);
      b.addEventListener('click', () => act('DELETE', `/api/faults/${encodeURIComponent(f.id)}`, null, `healed: ${describe(f)}`));
      li.append(t, b);
      return li;
    }));
    const tm = $('#lab-timing');
    tm.textContent = timingText(timing);
    card().dataset.slow = String(slowFactor());
    $('#lab-slow').setAttribute('aria-pressed', slowFactor() > 1 ? 'true' : 'false');
  }

  async function act(method, path, body, done) {
    if (available === false) { o.toast(NOT_THERE, true); return; }
    const res = await o.api(method, path, body);
    // A coordinator without the fault lab answers its generic 404 for any unknown path
    // (an unknown replica is a 404 too, with its own message).
    if (res.status === 404 && /no such API endpoint/i.test(msg(res))) { setAvailable(false, NOT_THERE); return; }
    if (!res.ok) { o.toast(`${method} ${path}: ${msg(res)}`, true); return; }
    if (path === '/api/timing' && res.body) timing = res.body.timing || res.body;
    o.announce(done);
    await refresh();
  }

  function fillReplicas() {
    const reps = o.replicas().filter((r) => r.role !== 'removed');
    const sig = reps.map((r) => `${r.id}:${r.name}:${r.role}`).join(',');
    if (sig === card().dataset.sig) return;
    card().dataset.sig = sig;
    for (const sel of card().querySelectorAll('select.lab-replica')) {
      const keep = sel.value;
      sel.replaceChildren(...reps.map((r) => {
        const op = document.createElement('option');
        op.value = r.id; op.textContent = o.replicaName(r.id);
        return op;
      }));
      if (reps.some((r) => r.id === keep)) sel.value = keep;
    }
    const b = $('#lab-link-b');
    if (b.value === $('#lab-link-a').value && reps[1]) b.value = reps[1].id;
    // Partition: each replica in group A or B; the primary alone in A by default.
    const groups = $('#lab-groups');
    groups.replaceChildren(...reps.map((r) => {
      const lab = document.createElement('label');
      lab.className = 'lab-group';
      const sel = document.createElement('select');
      sel.dataset.id = r.id;
      sel.setAttribute('aria-label', `group of ${o.replicaName(r.id)}`);
      for (const g of ['A', 'B']) { const op = document.createElement('option'); op.value = g; op.textContent = g; sel.append(op); }
      sel.value = r.role === 'primary' ? 'A' : 'B';
      lab.append(document.createTextNode(`${o.replicaName(r.id)} `), sel);
      return lab;
    }));
    if (available === false) setAvailable(false, NOT_THERE);
  }

  function init(opts) {
    o = opts;
    $('#lab-partition').addEventListener('submit', (e) => {
      e.preventDefault();
      const by = { A: [], B: [] };
      for (const sel of $('#lab-groups').querySelectorAll('select')) by[sel.value].push(sel.dataset.id);
      const groups = [by.A, by.B].filter((g) => g.length);
      if (groups.length < 2) { o.toast('A partition needs replicas in both groups', true); return; }
      act('POST', '/api/faults', { kind: 'partition', groups }, `partitioned: ${groups.map((g) => g.map(o.replicaName).join(', ')).join(' | ')}`);
    });
    $('#lab-isolate').addEventListener('submit', (e) => {
      e.preventDefault();
      const r = $('#lab-isolate-r').value;
      act('POST', '/api/faults', { kind: 'isolate', replica: r }, `${o.replicaName(r)} isolated`);
    });
    const link = (cut) => {
      const a = $('#lab-link-a').value, b = $('#lab-link-b').value;
      if (a === b) { o.toast('Choose two different replicas for a link', true); return; }
      const delay = Math.max(0, Number($('#lab-link-delay').value) || 0);
      const loss = cut ? 1 : Math.max(0, Math.min(100, Number($('#lab-link-loss').value) || 0)) / 100;
      act('POST', '/api/faults', { kind: 'link', between: [a, b], delay_ms: cut ? 0 : delay, loss },
        `${o.replicaName(a)} ↔ ${o.replicaName(b)} ${cut ? 'cut' : 'slowed'}`);
    };
    $('#lab-link').addEventListener('submit', (e) => { e.preventDefault(); link(false); });
    $('#lab-link-cut').addEventListener('click', () => link(true));
    $('#lab-pause').addEventListener('submit', (e) => {
      e.preventDefault();
      const r = $('#lab-pause-r').value, ms = Math.max(100, Number($('#lab-pause-ms').value) || 3000);
      act('POST', '/api/faults', { kind: 'pause', replica: r, ms }, `${o.replicaName(r)} paused for ${ms} ms`);
    });
    $('#lab-slow').addEventListener('click', () => act('PUT', '/api/timing', { slow_motion: 10 }, 'slow motion ×10'));
    $('#lab-normal').addEventListener('click', () => act('PUT', '/api/timing', { slow_motion: 1 }, 'normal speed'));
    $('#lab-heal-all').addEventListener('click', () => act('DELETE', '/api/faults', null, 'every fault healed'));
    setInterval(() => { if (!document.hidden) fillReplicas(); }, 1000);
    fillReplicas();
    refresh();
  }

  /* A WebSocket message about faults or timing (if the coordinator sends them):
   * the list is asked for again rather than patched. */
  function fromStream() { refresh(); }

  /* Every live snapshot carries the faults in force and the timing ("faults",
   * "timing" in /api/cluster): taken from there as they change, so the ring,
   * the list and the timing need no polling and an expiry shows at once. */
  let clusterSig = '';
  function fromCluster(c) {
    if (!c || !Array.isArray(c.faults)) return;
    const sig = JSON.stringify([c.faults.map((f) => f.id), c.timing]);
    if (sig === clusterSig) return;
    clusterSig = sig;
    if (available !== true) setAvailable(true);
    faults = c.faults;
    if (c.timing) timing = c.timing;
    render();
    o.onFaults(faults);
  }

  const slowFactor = () => (timing && Number(timing.slow_motion) > 1 ? Number(timing.slow_motion) : 1);

  window.ReplFaults = {
    init, refresh, fromStream, fromCluster, describe: (f) => (o ? describe(f) : f.kind), active: () => faults,
    timing: () => timing, slowFactor,
  };
})();

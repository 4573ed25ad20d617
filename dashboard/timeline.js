/* replicacao dashboard: the timeline you can scrub.
 *
 * One job: draw the recorded past (history.js) on a D3 time axis, one lane
 * per replica coloured by role (a failure red, labelled with what happened),
 * fault windows shaded, commits as ticks on top, failovers as markers with
 * their measured time, and let a person drag a cursor back in time. Where
 * the cursor is, the ring shows the cluster as it was (app.js asks
 * ReplHistory.stateAt for it); "Live" returns.
 *
 * Exposes window.ReplTimeline.
 */
(function () {
  'use strict';
  if (!window.d3 || !window.ReplHistory) return;
  const H = window.ReplHistory;

  const LANE = 20, TOP = 24, AXIS = 20, LEFT = 92, RIGHT = 10;
  const WINDOWS = [['1 min', 60e3], ['5 min', 300e3], ['15 min', 900e3], ['all', Infinity]];

  let opts = null;
  let svg = null, root = null;
  let windowMs = 300e3;
  let cursor = null;      // the time scrubbed to; null: live
  let frozenTo = null;    // the window's end while scrubbing (the axis stops moving)
  let x = null;
  let dragging = false;

  const fmt = d3.timeFormat('%H:%M:%S');
  /* The axis in the 24-hour clock the events use (d3's default, "11:58",
   * leaves morning and evening to guess); whole minutes without seconds. */
  const fmtMinute = d3.timeFormat('%H:%M');
  const axisFormat = (d) => (d.getSeconds() || d.getMilliseconds() ? fmt(d) : fmtMinute(d));
  const fmtMs = (t) => `${fmt(new Date(t))}.${String(Math.floor(t % 1000)).padStart(3, '0')}`;
  const dur = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`);

  function init(o) {
    opts = o;
    const card = o.card;
    svg = d3.select(card.querySelector('svg.tl-svg'));
    root = svg.append('g');
    root.append('g').attr('class', 'tl-faults');
    root.append('g').attr('class', 'tl-lanes');
    root.append('g').attr('class', 'tl-commits').attr('aria-hidden', 'true');
    root.append('g').attr('class', 'tl-failovers');
    root.append('g').attr('class', 'tl-axis').attr('aria-hidden', 'true');
    root.append('g').attr('class', 'tl-cursor').attr('aria-hidden', 'true');
    const sel = card.querySelector('select.tl-window');
    for (const [label, ms] of WINDOWS) {
      const op = document.createElement('option');
      op.value = String(ms); op.textContent = label;
      if (ms === windowMs) op.selected = true;
      sel.append(op);
    }
    sel.addEventListener('change', () => { windowMs = Number(sel.value); render(); });
    card.querySelector('.tl-live').addEventListener('click', () => scrub(null));

    const node = svg.node();
    const at = (ev) => {
      const [px] = d3.pointer(ev, node);
      const [a, b] = x.range();
      return x.invert(Math.max(a, Math.min(b, px))).getTime();
    };
    node.addEventListener('pointerdown', (ev) => {
      if (!x) return;
      dragging = true;
      node.setPointerCapture(ev.pointerId);
      scrub(at(ev));
    });
    node.addEventListener('pointermove', (ev) => { if (dragging && x) scrub(at(ev)); });
    const stop = () => { dragging = false; };
    node.addEventListener('pointerup', stop);
    node.addEventListener('pointercancel', stop);
    node.addEventListener('keydown', (ev) => {
      if (!x) return;
      const step = ev.shiftKey ? 10000 : 1000;
      const [d0, d1] = x.domain().map((d) => d.getTime());
      const base = cursor ?? d1;
      if (ev.key === 'ArrowLeft') scrub(Math.max(d0, base - step));
      else if (ev.key === 'ArrowRight') { const t = base + step; scrub(t >= (frozenTo ?? Date.now()) ? null : t); }
      else if (ev.key === 'Home') scrub(d0);
      else if (ev.key === 'End' || ev.key === 'Escape') scrub(null);
      else return;
      ev.preventDefault();
    });
    H.onChange(() => schedule());
    setInterval(() => { if (!document.hidden && cursor === null) render(); }, 1000);
    new ResizeObserver(() => schedule()).observe(card);
    render();
  }

  /* Move the cursor to t (null: back to live) and tell app.js. */
  function scrub(t) {
    if (t === null) { cursor = null; frozenTo = null; } else {
      if (frozenTo === null) frozenTo = Date.now();
      cursor = Math.min(t, frozenTo);
    }
    opts.card.dataset.mode = cursor === null ? 'live' : 'past';
    opts.card.querySelector('.tl-live').disabled = cursor === null;
    opts.onScrub(cursor);
    render();
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  function render() {
    if (!opts) return;
    const to = frozenTo ?? Date.now();
    const first = H.firstTime();
    const from = first === null ? to - 60e3 : Math.max(first, to - windowMs);
    const lanes = H.lanes(from, to);
    const w = Math.max(200, opts.card.querySelector('.tl-plot').clientWidth);
    const hgt = TOP + Math.max(1, lanes.length) * LANE + AXIS;
    svg.attr('width', w).attr('height', hgt).attr('viewBox', `0 0 ${w} ${hgt}`);
    x = d3.scaleTime().domain([new Date(from), new Date(Math.max(to, from + 1000))]).range([LEFT, w - RIGHT]);
    const y = (i) => TOP + i * LANE;
    const xt = (t) => x(new Date(t));
    const rowOf = new Map(lanes.map((l, i) => [l.id, i]));

    // Lanes: a label and the role bands.
    const lg = root.select('.tl-lanes').selectAll('g.lane').data(lanes, (l) => l.id).join((enter) => {
      const g = enter.append('g').attr('class', 'lane');
      g.append('rect').attr('class', 'lane-bg');
      g.append('text').attr('class', 'lane-name').append('title');
      g.append('g').attr('class', 'bands');
      return g;
    });
    lg.attr('data-id', (l) => l.id).attr('transform', (l, i) => `translate(0,${y(i)})`);
    lg.select('.lane-bg').attr('x', LEFT).attr('y', 1).attr('width', w - LEFT - RIGHT).attr('height', LANE - 2);
    lg.select('.lane-name').attr('x', LEFT - 6).attr('y', LANE / 2 + 4)
      .text((l) => opts.shortName(l.id, l.name)).select('title').text((l) => `${l.name} (id ${l.id})`);
    lg.select('.bands').selectAll('g.band').data((l) => l.segs.map((s) => ({ ...s, id: l.id, name: l.name })), (s) => `${s.t0}`)
      .join((enter) => {
        const g = enter.append('g').attr('class', 'band');
        g.append('rect');
        g.append('text');
        g.append('title');
        return g;
      })
      .attr('class', (s) => `band cls-${s.cls}`)
      .attr('data-role', (s) => s.role).attr('data-cls', (s) => s.cls).attr('data-epoch', (s) => s.epoch)
      .attr('data-t0', (s) => s.t0).attr('data-t1', (s) => s.t1)
      .each(function (s) {
        const x0 = xt(s.t0), x1 = xt(s.t1);
        const bw = Math.max(s.cls === 'failed' ? 4 : 1, x1 - x0);
        const g = d3.select(this);
        g.select('rect').attr('x', x0).attr('y', 2).attr('width', bw).attr('height', LANE - 4).attr('rx', 3);
        const label = s.cls === 'failed' ? `${s.role || ''}${s.what ? `, ${s.what}` : ''}` : `e${s.epoch ?? '?'}`;
        g.select('text').attr('x', x0 + 4).attr('y', LANE / 2 + 4)
          .text(bw > (s.cls === 'failed' ? 60 : 24) ? label : '');
        g.select('title').text(`${s.name}: ${s.cls === 'failed' ? `${s.role || 'replica'}, ${s.what || s.status}` : s.role}, epoch ${s.epoch ?? '?'} · ${fmtMs(s.t0)} – ${fmtMs(s.t1)} (${dur(s.t1 - s.t0)})`);
      });

    // Faults: shaded over the lanes of the replicas they touch (all for a partition).
    const faults = H.faultWindows(opts.activeFaults()).filter((f) => (f.t1 ?? to) >= from && f.t0 <= to);
    const touched = (f) => {
      const fo = f.fault || {};
      const ids = [fo.replica, ...(fo.between || []), ...((fo.groups || []).flat())].filter(Boolean);
      const rows = ids.map((id) => rowOf.get(id)).filter((r) => r !== undefined);
      return rows.length && fo.kind !== 'partition' ? [Math.min(...rows), Math.max(...rows)] : [0, Math.max(0, lanes.length - 1)];
    };
    root.select('.tl-faults').selectAll('g.fault').data(faults, (f) => f.id).join((enter) => {
      const g = enter.append('g').attr('class', 'fault');
      g.append('rect'); g.append('text'); g.append('title');
      return g;
    }).attr('data-kind', (f) => f.kind).each(function (f) {
      const [r0, r1] = touched(f);
      const x0 = xt(Math.max(f.t0, from)), x1 = xt(Math.min(f.t1 ?? to, to));
      const g = d3.select(this);
      g.select('rect').attr('x', x0).attr('y', y(r0)).attr('width', Math.max(2, x1 - x0)).attr('height', (r1 - r0 + 1) * LANE);
      g.select('text').attr('x', x0 + 3).attr('y', y(r0) - 3).text(x1 - x0 > 40 ? f.kind : '');
      g.select('title').text(`${f.kind} ${f.id}: ${fmtMs(f.t0)} – ${f.t1 ? fmtMs(f.t1) : 'active'}`);
    });

    // Commits: a tick each on the top row.
    const commits = H.events(from, to, (e) => e.type === 'committed' || e.type === 'request_committed');
    root.select('.tl-commits').selectAll('text').data([0]).join('text').attr('class', 'tl-row-name')
      .attr('x', LEFT - 6).attr('y', TOP - 3).text('commits');
    root.select('.tl-commits').selectAll('line').data(commits).join('line')
      .attr('x1', (e) => xt(e.time_ms)).attr('x2', (e) => xt(e.time_ms)).attr('y1', TOP - 10).attr('y2', TOP - 3);

    // Failovers: a marker across every lane, with the measured time.
    const fos = H.events(from, to, (e) => e.type === 'elected' && typeof e.failover_ms === 'number');
    root.select('.tl-failovers').selectAll('g.failover').data(fos, (e) => `${e.time_ms}`).join((enter) => {
      const g = enter.append('g').attr('class', 'failover');
      g.append('rect').attr('class', 'fo-span'); g.append('line'); g.append('text'); g.append('title');
      return g;
    }).attr('data-ms', (e) => e.failover_ms).each(function (e) {
      const xe = xt(e.time_ms), xs = xt(e.time_ms - e.failover_ms);
      const g = d3.select(this);
      g.select('.fo-span').attr('x', Math.max(LEFT, xs)).attr('y', TOP - 2).attr('width', Math.max(0, xe - Math.max(LEFT, xs))).attr('height', lanes.length * LANE + 2);
      g.select('line').attr('x1', xe).attr('x2', xe).attr('y1', TOP - 12).attr('y2', TOP + lanes.length * LANE);
      const right = xe > w - 110;
      g.select('text').attr('x', right ? xe - 3 : xe + 3).attr('y', TOP - 13).attr('text-anchor', right ? 'end' : 'start')
        .text(`failover ${dur(e.failover_ms)}`);
      g.select('title').text(`${opts.nameOf(e.previous_primary)} → ${opts.nameOf(e.subject || e.replica)} in epoch ${e.epoch}: failover took ${dur(e.failover_ms)}`);
    });

    root.select('.tl-axis').attr('transform', `translate(0,${TOP + lanes.length * LANE + 2})`)
      .call(d3.axisBottom(x).ticks(Math.max(2, Math.floor((w - LEFT) / 90))).tickFormat(axisFormat)
        .tickSizeOuter(0));

    // The cursor (its time is in the status line, not over the failover labels).
    const cg = root.select('.tl-cursor').selectAll('g').data(cursor === null ? [] : [cursor]).join((enter) => {
      const g = enter.append('g');
      g.append('line'); g.append('path');
      return g;
    });
    cg.select('line').attr('x1', (t) => xt(t)).attr('x2', (t) => xt(t)).attr('y1', 2).attr('y2', TOP + lanes.length * LANE);
    cg.select('path').attr('d', (t) => `M${xt(t) - 5},0 L${xt(t) + 5},0 L${xt(t)},7 Z`);
    const status = opts.card.querySelector('.tl-status');
    const txt = cursor === null
      ? `live · ${H.size()} recorded events and snapshots · drag on the lanes to go back`
      : `showing ${fmtMs(cursor)} (${dur(Date.now() - cursor)} ago)`;
    if (status.textContent !== txt) status.textContent = txt;
    svg.attr('aria-valuetext', cursor === null ? 'live' : fmtMs(cursor));
    svg.attr('aria-label', `Timeline from ${fmt(new Date(from))} to ${fmt(new Date(to))}: ${lanes.length} replicas; ${fos.length} failovers. ${txt}. Arrow keys move the cursor, End returns to live.`);
  }

  window.ReplTimeline = { init, render: schedule, scrub, cursor: () => cursor };
})();

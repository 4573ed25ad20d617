/* replicacao dashboard.
 *
 * Live view of the cluster served by the coordinator. State comes from the
 * WebSocket /api/ws (a full "cluster" snapshot on connect and on every change,
 * plus "event" messages); the HTTP API is used for actions (requests, fail) and
 * for one replica's data lists in the details panel. No polling loop.
 *
 * Sections: utilities · HTTP · cluster view (D3) · table · details panel ·
 * requests · timeline · WebSocket · boot.
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

  const ROLE_GLYPH = { primary: 'P', backup: 'B', candidate: 'C', learner: 'L' };

  const state = {
    cluster: null,          // last snapshot
    prev: null,             // previous snapshot (for diff effects)
    selected: null,         // replica id in the details panel
    detail: null,           // last GET /api/replicas/{id} answer for `selected`
    detailSig: '',          // snapshot signature the detail was fetched for
    seq: 0,                 // highest data-N seen, for auto-numbering
    connected: false,
    everConnected: false,
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
    return (r && r.name) || id;
  }

  function isUp(r) { return r && r.status === 'up'; }
  function isPrimary(r) { return r && state.cluster && r.id === state.cluster.primary && isUp(r); }

  /* What a replica's circle says, in words: used for labels and aria. */
  function roleText(r) {
    if (r.status === 'failed') return 'failed';
    if (r.status === 'down') return `${r.role || 'unknown'}, down`;
    return r.role || 'unknown';
  }

  /* Visibly behind: a learner, or a backup more than a couple of entries short
   * (one or two behind is normal while requests flow and must not flicker). */
  function catchingUp(r, c) {
    if (!isUp(r) || !c || r.role === 'primary' || r.role === 'candidate') return false;
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

  /* Returns {ok, status, body, error}; `error` is a readable string on failure. */
  async function api(method, path, body, timeoutMs = 15000) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const res = await fetch(path, {
        method,
        headers: body !== undefined ? { 'Content-Type': 'application/json' } : undefined,
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
  const gPulses = svg.append('g').attr('class', 'pulses').attr('aria-hidden', 'true');
  const gNodes = svg.append('g').attr('class', 'nodes');
  const gFx = svg.append('g').attr('class', 'fx').attr('aria-hidden', 'true');

  const layout = { w: 0, h: 0, cx: 0, cy: 0, R: 0, r: 36, pos: new Map() };

  /* Ring layout, stable by id (a failover recolours circles, it never moves them),
   * scaled to fill the box. Labels (name · role, then index · lag) sit under each
   * circle for small rings, and radially outside the ring for bigger ones so that
   * neighbours' labels and the replication links in the middle never collide. */
  function computeLayout(replicas) {
    const rect = wrap.getBoundingClientRect();
    const w = Math.max(260, rect.width), h = Math.max(260, rect.height);
    const n = replicas.length;
    const legendH = w < 520 ? 40 : 22;           // legend overlay at the bottom
    const radial = n >= 4;
    const narrow = w < 480;
    const labelW = narrow ? 66 : n > 8 ? 76 : 88;             // widest label, roughly
    const unit = replicas.map((_, i) => {
      if (n === 1) return [0, 0, Math.PI / 2];
      if (n === 2) return i === 0 ? [-1, 0, Math.PI] : [1, 0, 0];
      const a = -Math.PI / 2 + (i * 2 * Math.PI) / n;
      return [Math.cos(a), Math.sin(a), a];
    });
    const xs = unit.map((u) => u[0]), ys = unit.map((u) => u[1]);
    const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
    const spanX = Math.max(maxX - minX, 0.001), spanY = Math.max(maxY - minY, 0.001);
    let r = n <= 3 ? 44 : n <= 5 ? 40 : n <= 8 ? 34 : n <= 11 ? 28 : 24;
    if (w < 480) r = Math.min(r, 36);
    let Rx = 0, Ry = 0, padL = 0, padR = 0, padT = 0, padB = 0;
    for (let k = 0; k < 3; k++) {               // r depends on the radii (neighbours must not touch)
      if (radial) {
        padL = padR = r + 18 + labelW; padT = r + 20 + 32; padB = r + 20 + 32;
      } else {
        padL = padR = Math.max(r + 10, w < 480 ? 46 : 64); padT = r + 16; padB = r + 52;
      }
      const availW = w - padL - padR, availH = h - legendH - padT - padB;
      // an ellipse when the box is not square, but not a squashed one
      Rx = Math.max(24, Math.min(availW / spanX, 340));
      Ry = Math.max(24, Math.min(availH / spanY, 340));
      Rx = Math.min(Rx, Ry * 1.5);
      Ry = Math.min(Ry, Rx * (narrow ? 1.7 : 1.3));
      if (n > 2) r = Math.max(15, Math.min(r, Math.min(Rx, Ry) * Math.sin(Math.PI / n) * 0.62));
    }
    if (n === 1) { Rx = 0; Ry = 0; }
    const R = Math.min(Rx, Ry);
    const usedW = spanX * Rx, usedH = spanY * Ry;
    const ox = padL + (w - padL - padR - usedW) / 2 - minX * Rx;
    const oy = padT + (h - legendH - padT - padB - usedH) / 2 - minY * Ry;
    Object.assign(layout, { w, h, r, R, cx: ox, cy: oy, radial, small: n > 8 || (narrow && radial) });
    layout.pos = new Map();
    replicas.forEach((rep, i) => layout.pos.set(rep.id, { x: ox + unit[i][0] * Rx, y: oy + unit[i][1] * Ry, a: unit[i][2] }));
    svg.attr('viewBox', `0 0 ${w} ${h}`);
  }

  /* Where a node's two label lines go, relative to its centre. */
  function labelPlace(d) {
    const { r, radial } = layout;
    const p = layout.pos.get(d.id);
    if (!radial || !p) return { x: 0, y1: r + 32, y2: r + 47, anchor: 'middle' };
    const c = Math.cos(p.a), s = Math.sin(p.a);
    const dist = r + 18;
    const lx = c * dist, ly = s * dist;
    const top = ly + (s - 1) * 15;             // block of two lines, ~30px tall
    return { x: lx, y1: top + 12, y2: top + 27, anchor: c > 0.15 ? 'start' : c < -0.15 ? 'end' : 'middle' };
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
    computeLayout(reps);
    // Snapshots arrive up to ~10/s; only animate when something actually moves,
    // so running animations are not restarted on every heartbeat-age change.
    const layoutKey = `${Math.round(layout.w)}x${Math.round(layout.h)}:${reps.map((x) => x.id).join(',')}`;
    const moved = layoutKey !== state.layoutKey;
    state.layoutKey = layoutKey;
    const t = moved ? svg.transition().duration(450).ease(d3.easeCubicOut) : null;
    renderWatermark(c);
    renderLinks(c, reps, moved, t);
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
    wm.select('.watermark-sub').attr('x', cx).attr('y', cy + big * 0.5 + 6)
      .text((d) => (d.primary ? 'epoch' : 'epoch · no primary'))
      .style('fill', (d) => (d.primary ? null : '#b45309'));
  }

  /* Replication links: from the primary to every other replica. */
  function renderLinks(c, reps, moved, t) {
    const { r } = layout;
    const prim = c && reps.find((x) => x.id === c.primary && isUp(x));
    const links = prim ? reps.filter((x) => x.id !== prim.id).map((x) => ({ id: x.id, s: prim, t: x })) : [];
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
        else if (d.t.role === 'learner') k += ' to-learner';
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

    nodes
      .attr('class', (d) => {
        let k = `node role-${d.role || 'unknown'} status-${d.status || 'unknown'}`;
        if (d.id === state.selected) k += ' selected';
        if (catchingUp(d, c)) k += ' catching-up';
        return k;
      })
      .attr('data-id', (d) => d.id)
      .attr('data-role', (d) => d.role)
      .attr('data-status', (d) => d.status)
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
      .text((d) => (d.status === 'failed' ? '✕' : ROLE_GLYPH[d.role] || '?'));
    nodes.select('.inner')
      .attr('y', r * 0.52)
      .attr('font-size', Math.max(9, Math.min(12, r * 0.3)))
      .style('display', r >= 22 ? null : 'none')   // tiny circles: the epoch moves to the label
      .text((d) => (r >= 30 ? `epoch ${show(d.epoch)}` : `e${show(d.epoch)}`));
    nodes.select('.label-name')
      .attr('x', (d) => labelPlace(d).x).attr('y', (d) => labelPlace(d).y1)
      .attr('text-anchor', (d) => labelPlace(d).anchor)
      .style('font-size', layout.small ? '12px' : null)
      .text((d) => `${d.name || d.id} · ${d.status === 'failed' ? 'failed' : d.role || '?'}`);
    nodes.select('.label-meta')
      .attr('x', (d) => labelPlace(d).x).attr('y', (d) => labelPlace(d).y2)
      .attr('text-anchor', (d) => labelPlace(d).anchor)
      .style('font-size', layout.small ? '10.5px' : null)
      .classed('lagging', (d) => (num(d.lag) || 0) > 0 || catchingUp(d, c))
      .text((d) => {
        if (d.status === 'failed') return 'restarting…';
        if (d.status === 'down') return `down · #${show(d.commit_index)}`;
        if (catchingUp(d, c)) return `catching up ${show(d.commit_index)}/${show(c.commit_index)}`;
        return `#${show(d.commit_index)} · lag ${show(d.lag)}${r < 22 ? ` · e${show(d.epoch)}` : ''}`;
      });
    nodes.select('.badge')
      .attr('transform', `translate(${r * 0.74},${-r * 0.74})`)
      .style('display', (d) => (splitView(d, c) ? null : 'none'))
      .select('title').text((d) => `${d.id} believes the primary is ${d.believes_primary || 'none'}`);
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
  function pulse() {
    const now = performance.now();
    if (now - lastPulse < CFG.pulseGapMs || document.hidden) return;
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
      const up = c.replicas.filter(isUp).length;
      $('#stat-replicas').textContent = `${up}/${c.replicas.length} up`;
    }
    if (c) {
      document.title = `${c.primary ? `${replicaName(c.primary)} primary` : 'no primary'} · epoch ${show(c.epoch)} · replicacao`;
    }
    const noPrimary = !!c && !c.primary;
    for (const b of [$('#btn-fail-primary')]) b.disabled = noPrimary;
  }

  function renderTable() {
    const c = state.cluster;
    const reps = c ? [...c.replicas].sort(byId) : [];
    const rows = d3.select('#replica-table tbody').selectAll('tr').data(reps, (d) => d.id).join((enter) => {
      const tr = enter.append('tr').on('click', (ev, d) => { if (!ev.target.closest('button')) select(d.id); });
      tr.append('td').attr('class', 'row-name');
      tr.append('td').attr('class', 'c-role');
      tr.append('td').attr('class', 'c-status');
      tr.append('td').attr('class', 'num opt c-epoch');
      tr.append('td').attr('class', 'num opt c-last');
      tr.append('td').attr('class', 'num opt c-commit');
      tr.append('td').attr('class', 'num c-lag');
      tr.append('td').attr('class', 'num opt c-hb');
      tr.append('td').append('button').attr('type', 'button').attr('class', 'btn btn-small btn-fail')
        .on('click', (ev, d) => failReplica(d.id));
      return tr;
    });
    rows.attr('data-id', (d) => d.id).classed('selected', (d) => d.id === state.selected);
    rows.select('.row-name').text((d) => d.name || d.id);
    rows.select('.c-role').selectAll('span').data((d) => [d]).join('span')
      .attr('class', (d) => `pill role-${d.role}${d.status !== 'up' ? ' stale' : ''}`).text((d) => d.role);
    rows.select('.c-status').selectAll('span').data((d) => [d]).join('span')
      .attr('class', (d) => `pill status-${d.status}`).text((d) => d.status);
    rows.select('.c-epoch').text((d) => show(d.epoch));
    rows.select('.c-last').text((d) => show(d.last_index));
    rows.select('.c-commit').text((d) => show(d.commit_index));
    rows.select('.c-lag').text((d) => show(d.lag)).classed('lag-bad', (d) => (num(d.lag) || 0) > 0);
    rows.select('.c-hb').text((d) => (isPrimary(d) ? '—' : fmtDuration(d.heartbeat_age_ms)));
    rows.select('button')
      .text('Fail')
      .attr('aria-label', (d) => `Fail ${d.name || d.id}`)
      .property('disabled', (d) => d.status === 'failed');
  }

  // ================================================================ details panel

  const details = $('#details');
  const detailsBody = $('#details-body');

  function select(id) {
    if (state.selected !== id) {
      state.selected = id;
      state.detail = null;
      state.detailSig = '';
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
        h('span', { class: 'pill', 'data-k': 'status' }),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'btn btn-small btn-fail', 'data-k': 'fail', onclick: () => failReplica(state.selected) }, 'Fail'),
        h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Close details', onclick: closeDetails }, '×')),
      h('div', { class: 'details-addr', 'data-k': 'addr' }),
      h('p', { class: 'alert', 'data-k': 'split', hidden: true }),
      h('p', { class: 'alert bad', 'data-k': 'err', hidden: true }),
      h('dl', { class: 'kv' },
        kvItem('epoch', 'epoch'), kvItem('last_index', 'last index'), kvItem('commit_index', 'commit index'),
        kvItem('lag', 'lag'), kvItem('heartbeat', 'heartbeat'), kvItem('uptime', 'uptime'),
        kvItem('believes', 'sees primary'), kvItem('processed', 'processed'), kvItem('synced', 'synced')),
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
    rp.className = `pill role-${role}${status !== 'up' ? ' stale' : ''}`;
    rp.textContent = status !== 'up' ? `last seen as ${role}` : role + (isPrimary(r) ? ' ★' : '');
    const sp = dk('status'); sp.className = `pill status-${status}`; sp.textContent = status;
    const fb = dk('fail');
    fb.textContent = `Fail ${r.name || id}`;
    fb.disabled = !live || status === 'failed';
    dk('addr').textContent = `${show(r.address)} · ${r.voter === false ? 'non-voting learner' : 'voter'}`;

    const split = splitView(r, c);
    const sa = dk('split');
    sa.hidden = !split;
    if (split) {
      sa.textContent = `Split view: ${id} believes the primary is ${r.believes_primary || 'nobody'}, ` +
        `but the cluster's primary is ${c.primary || 'nobody'} (epoch ${show(c.epoch)}).`;
    }
    const set = (k, v, cls) => { const e = dk(k); e.textContent = v; e.className = cls || ''; };
    set('epoch', show(r.epoch));
    set('last_index', show(r.last_index));
    set('commit_index', show(r.commit_index));
    set('lag', show(r.lag), (num(r.lag) || 0) > 0 ? 'lag-bad' : '');
    set('heartbeat', isPrimary(r) ? '—' : fmtDuration(r.heartbeat_age_ms), (num(r.heartbeat_age_ms) || 0) > 1000 ? 'lag-bad' : '');
    set('uptime', fmtDuration(r.uptime_ms));
    set('believes', show(r.believes_primary, 'none'), split ? 'split' : '');
    set('processed', show(r.processed));
    set('synced', show(r.synced));

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
    renderList('#processed-list', d && d.processed_data, 'pcount', 'processed');
    renderList('#synced-list', d && d.synced_data, 'scount', 'synced');
    renderPeers(d && d.peers);
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
        li.select('.d').text((e) => e.data).attr('title', (e) => `${e.data}${e.id ? ` (client id ${e.id})` : ''}`);
        li.select('.by').text((e) => `e${show(e.epoch)} · ${show(e.primary)}`);
      })
      .order();
  }

  function renderPeers(peers) {
    const tb = d3.select(dk('peers'));
    const list = Array.isArray(peers) ? [...peers].sort(byId) : [];
    tb.selectAll('tr').data(list, (p) => p.id).join((enter) => {
      const tr = enter.append('tr');
      for (let i = 0; i < 5; i++) tr.append('td');
      return tr;
    }).each(function (p) {
      const tds = this.children;
      tds[0].replaceChildren(h('span', { class: `dot ${p.connected ? 'on' : 'off'}`, 'aria-hidden': 'true' }), p.id);
      tds[0].setAttribute('aria-label', `${p.id}, ${p.connected ? 'connected' : 'not connected'}`);
      tds[1].textContent = show(p.address);
      tds[2].textContent = p.voter === false ? 'no' : 'yes';
      tds[3].textContent = show(p.match_index);
      tds[4].textContent = num(p.last_seen_ms) === null || p.last_seen_ms < 0 ? 'never' : `${fmtDuration(p.last_seen_ms)} ago`;
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
    if (res.ok && res.body) {
      state.detail = res.body;
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
        h('b', null, show(info.primary)),
        info.failed ? h('span', { class: 'chip-fault' }, ` (${info.failed} failed first)`) : null));
    } else {
      parts.push(h('span', { class: 'chip-where', title: info.error }, info.error));
      if (info.retry) {
        parts.push(h('button', { type: 'button', class: 'btn btn-small', onclick: () => sendRequest(req) }, 'retry'));
      }
    }
    li.setAttribute('aria-label', `request ${req.data}: ${li.textContent}`);
    li.replaceChildren(...parts);
  }

  async function sendRequest(req) {
    const li = addChip(req);
    paintChip(li, req, 'pending');
    const body = { data: req.data, id: req.id, fault: !!req.fault };
    const res = await api('POST', '/api/requests', body, CFG.requestTimeoutMs);
    if (res.ok && res.body) {
      paintChip(li, req, 'committed', res.body);
      if (res.body.failed) toast(`${res.body.failed} failed; ${res.body.primary} processed ${req.data} at #${res.body.index}`);
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
    if (res.ok) toast(`${(res.body && res.body.failed) || id} failed on purpose; the supervisor restarts it`);
    else toast(`Could not fail ${id}: ${res.error}`, true);
  }

  async function failPrimary() {
    const res = await api('POST', '/api/primary/fail');
    if (res.ok) toast(`primary ${(res.body && res.body.failed) || ''} failed on purpose; watch the election`);
    else toast(`Could not fail the primary: ${res.error}`, true);
  }

  // ================================================================ timeline

  const ICON = {
    elected: ['★', 'good'], stepped_down: ['↓', 'warn'], election_started: ['⚑', 'warn'],
    primary_lost: ['⚡', 'bad'], joined: ['+', 'learner'], caught_up: ['✓', 'learner'],
    committed: ['•', 'commit'], failed: ['✕', 'bad'], exited: ['↺', 'bad'], down: ['▼', 'bad'], up: ['▲', 'good'],
    request_sent: ['→', 'info'], request_committed: ['✓', 'good'], request_failed: ['⚠', 'bad'],
    local_lost: ['↻', 'warn'], local_back: ['⇄', 'good'],
  };

  const b = (x) => h('b', null, show(x, '?'));

  function describe(ev) {
    const who = ev.subject || ev.replica;
    const rq = ev.request || {};
    switch (ev.type) {
      case 'elected': return [b(ev.subject || ev.replica), ' elected primary', ev.epoch !== undefined ? ` in epoch ${ev.epoch}` : ''];
      case 'stepped_down': return [b(who), ' stepped down'];
      case 'election_started': return [b(who), ' started an election'];
      case 'primary_lost':
        return ev.subject && ev.replica && ev.subject !== ev.replica
          ? [b(ev.replica), ' lost contact with primary ', b(ev.subject)]
          : [b(who), ': primary lost'];
      case 'joined': return [b(who), ' joined as a learner'];
      case 'caught_up': return [b(who), ' caught up and became a voter'];
      case 'committed': return ['commit index → ', b(ev.index)];
      case 'failed': return [b(who), ' failed'];
      case 'down': return [b(who), ' is unreachable (down)'];
      case 'exited': return [b(who), ' exited'];
      case 'up': return [b(who), ' is up'];
      case 'request_sent': return [rq.fault ? 'fault request ' : 'request ', b(rq.data), ' sent'];
      case 'request_committed': return [b(rq.data), ' committed at ', b(`#${show(rq.index ?? ev.index)}`), ' by ', b(rq.primary || ev.replica)];
      case 'request_failed': return ['request ', b(rq.data), ' failed'];
      case 'local_lost': return ['connection to the coordinator lost'];
      case 'local_back': return ['reconnected; state resynced from a fresh snapshot'];
      default: return [b(ev.type), who ? ` · ${who}` : ''];
    }
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
        const names = who.length <= 3 ? who.join(', ') : `${who.slice(0, 2).join(', ')} and ${who.length - 2} more`;
        top.querySelector('.tl-text').replaceChildren(b(names), ' lost contact with primary ', b(ev.subject),
          ev.detail ? h('span', { class: 'tl-detail' }, ` — ${ev.detail}`) : '');
        return;
      }
    }

    const meta = [h('time', { class: 'tl-time', datetime: new Date(ev.time_ms || Date.now()).toISOString() }, fmtClock(ev.time_ms))];
    if (num(ev.epoch) > 0) meta.push(h('span', null, `epoch ${ev.epoch}`));
    if (num(ev.index) > 0 && ev.type !== 'committed') meta.push(h('span', null, `#${ev.index}`));
    if (ev.replica && ev.subject && ev.replica !== ev.subject && ev.type !== 'primary_lost') meta.push(h('span', null, `reported by ${ev.replica}`));
    if (ev.type === 'elected' && num(ev.failover_ms) !== null) {
      meta.unshift(h('span', { class: 'tl-failover', title: 'time from the previous primary failing to this election' },
        `failover ${fmtDuration(ev.failover_ms)}`));
    }
    const text = describe(ev);
    const detail = ev.detail || (ev.type === 'request_failed' && ev.request && ev.request.detail);
    const li = h('li', { class: `tl k-${kind}`, 'data-type': ev.type },
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
    if (rq) bumpSeq(rq.data);
    switch (ev.type) {
      case 'elected': {
        const who = ev.subject || ev.replica;
        burst(who, 'good');
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
        announce(`${ev.subject || ev.replica} ${ev.type === 'failed' ? 'failed' : 'is down'}`);
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

  function applyCluster(c) {
    if (!c || !Array.isArray(c.replicas)) return;
    state.cluster = c;
    renderAll();
    if (state.selected && detailSignature() !== state.detailSig) scheduleDetailsFetch();
  }

  // ================================================================ WebSocket

  let ws = null, attempt = 0, retryTimer = null, countdownTimer = null, retryAt = 0;

  function wsUrl() {
    return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/ws`;
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
      if (msg.type === 'cluster') applyCluster(msg.cluster);
      else if (msg.type === 'event') onEvent(msg.event);
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
  $('#banner-retry').addEventListener('click', () => { attempt = Math.max(0, attempt); connect(); });
  $('#show-commits').addEventListener('change', (e) => $('#timeline').classList.toggle('hide-commits', !e.target.checked));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.selected && !e.target.closest('input')) closeDetails();
  });
  new ResizeObserver(() => { if (state.cluster) renderAll(); }).observe(wrap);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) renderAll(); });

  setConn('connecting', 'connecting…');
  connect();
  seedSequence();
  window.__dashboard = state;  // for debugging and tests
})();

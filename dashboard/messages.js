/* replicacao dashboard: messages you can see.
 *
 * One job: move the replicas' real protocol messages (the WebSocket's
 * {"type":"messages"} stream: vote requests, votes, appends, acks) along the
 * ring as dots, RaftScope-style. In slow motion every message is its own dot,
 * sized and labelled by its type and epoch; at normal speed the replicas sum
 * their traffic per type and peer ten times a second, and each sum is one
 * small faint dot (a light flow, thicker where more goes).
 *
 * Bounded work: a fixed pool of SVG groups made once (CFG.pool); a message
 * that finds no free one is dropped and counted; one requestAnimationFrame
 * loop moves the dots in flight and stops when there are none. With
 * prefers-reduced-motion a dot does not travel: it shows for a moment at the
 * middle of its link, on the sender's side.
 *
 * Exposes window.ReplMessages.
 */
(function () {
  'use strict';

  const CFG = {
    pool: 48,            // dots on screen at most (SVG groups, made once)
    queueMax: 64,        // messages waiting for their start time at most
    normalMs: 450,       // travel time of an aggregated dot at normal speed
    slowMinMs: 500,      // in slow motion: travel time, from the heartbeat, within these
    slowMaxMs: 1400,
  };

  const SVGNS = 'http://www.w3.org/2000/svg';
  let o = null;
  let layer = null;
  const dots = [];           // the pool: {g, c, t, busy, ...}
  const queue = [];          // {m, at}: in slow motion, messages start in the order and pace they were sent
  let running = false;
  let shown = 0, dropped = 0;
  const reduce = window.matchMedia ? window.matchMedia('(prefers-reduced-motion: reduce)') : { matches: false };

  /* Type, size and words of a dot. */
  const KIND = {
    vote_request: { cls: 'vote-req', r: 6, word: (m) => (m.pre_vote ? 'pre-vote' : 'vote?') },
    vote_response: { cls: 'vote-resp', r: 6, word: (m) => (m.granted ? 'vote ✓' : 'vote ✗') },
    append: { cls: 'append', r: 4.5, word: (m) => (m.entries ? `append +${m.entries}` : 'heartbeat') },
    append_response: { cls: 'ack', r: 3.5, word: (m) => (m.granted ? 'ack' : 'nack') },
    timeout_now: { cls: 'timeout-now', r: 6, word: () => 'timeout now' },
    install_snapshot: { cls: 'snapshot', r: 8, word: () => 'snapshot' },
  };
  const kindOf = (m) => KIND[m.type] || { cls: 'other', r: 4, word: (x) => String(x.type || '?') };

  function makePool() {
    for (let i = 0; i < CFG.pool; i++) {
      const g = document.createElementNS(SVGNS, 'g');
      g.setAttribute('class', 'msg');
      g.style.display = 'none';
      const c = document.createElementNS(SVGNS, 'circle');
      const t = document.createElementNS(SVGNS, 'text');
      g.append(c, t);
      layer.append(g);
      dots.push({ g, c, t, busy: false });
    }
  }

  function slowFactor() { return o ? o.slow() : 1; }

  /* A batch from one replica. */
  function ingest(batch) {
    if (!o || !batch || !Array.isArray(batch.messages)) return;
    if (document.hidden || !o.live()) return;          // nothing to watch: no work either
    const slow = slowFactor() > 1;
    const now = performance.now();
    let first = null;
    for (const m of batch.messages) {
      if (!m || !m.from || !m.to) continue;
      // A sum made before slow motion reached the replica is still a flow.
      if (slow && (Number(m.count) || 1) === 1) {
        // One dot per message, in the pace the sender sent them (a batch can hold a few).
        const t = Number(m.time_ms) || 0;
        if (first === null) first = t;
        if (queue.length >= CFG.queueMax) { dropped++; continue; }
        queue.push({ m, at: now + Math.max(0, Math.min(1000, t - first)) });
      } else {
        launch(m, now, false);
      }
    }
    if (batch.dropped) dropped += Number(batch.dropped) || 0;
    kick();
  }

  function launch(m, now, slow) {
    const a = o.pos(m.from), b = o.pos(m.to);
    if (!a || !b) return;
    const d = dots.find((x) => !x.busy);
    if (!d) { dropped++; return; }
    const k = kindOf(m);
    const hb = o.heartbeat() || 50;
    let dur = slow ? Math.max(CFG.slowMinMs, Math.min(CFG.slowMaxMs, hb * 1.6)) : CFG.normalMs;
    const cut = o.cut(m.from, m.to);
    const delay = cut ? 0 : o.delay(m.from, m.to) || 0;
    if (slow) dur += Math.min(3000, delay * slowFactor());   // a slowed link is slower still
    const count = Number(m.count) || 1;
    // Ends on the circles' edges, on the right of the line from a to b, so the
    // two directions of one link pass side by side.
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const ux = dx / len, uy = dy / len, off = 5, rr = o.radius() + 4;
    Object.assign(d, {
      busy: true, start: now, dur, cut,
      x1: a.x + ux * rr - uy * off, y1: a.y + uy * rr + ux * off,
      x2: b.x - ux * rr - uy * off, y2: b.y - uy * rr + ux * off,
    });
    const r = slow ? k.r * (m.type === 'append' && m.entries ? 1.35 : 1) : Math.min(5, 1.8 + Math.log2(count) * 0.6);
    d.c.setAttribute('r', r.toFixed(1));
    d.g.setAttribute('class', `msg ${k.cls}${slow ? ' one' : ' flow'}${d.cut ? ' lost' : ''}${m.granted === false && /response/.test(m.type) ? ' refused' : ''}`);
    d.g.dataset.type = m.type;
    d.g.dataset.from = m.from; d.g.dataset.to = m.to;
    d.g.dataset.epoch = m.epoch;
    d.g.dataset.count = count;
    d.g.dataset.n = shown + 1;   // which launch this is (a pooled group is reused)
    d.t.textContent = slow ? `${k.word(m)} e${m.epoch}` : '';
    // The words beside the dot, on its own side of the link (the other direction's are across).
    const px = -uy, py = ux;
    d.t.setAttribute('x', (px * (r + 5)).toFixed(1));
    d.t.setAttribute('y', (py * (r + 5) + 4).toFixed(1));
    d.t.setAttribute('text-anchor', px > 0.3 ? 'start' : px < -0.3 ? 'end' : 'middle');
    d.g.style.display = '';
    d.g.style.opacity = '';
    shown++;
    place(d, now);
  }

  function place(d, now) {
    const p = Math.min(1, (now - d.start) / d.dur);
    // A message into a cut link goes half-way and fades there; without motion
    // it stays at the middle of its link.
    const q = reduce.matches ? 0.45 : d.cut ? Math.min(p, 0.5) : p;
    const x = d.x1 + (d.x2 - d.x1) * q, y = d.y1 + (d.y2 - d.y1) * q;
    d.g.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)})`);
    if (d.cut && p > 0.5) d.g.style.opacity = String(Math.max(0, 1 - (p - 0.5) * 2));
    else if (p > 0.85) d.g.style.opacity = String(Math.max(0, (1 - p) / 0.15));
    if (p >= 1) { d.busy = false; d.g.style.display = 'none'; }
  }

  function frame() {
    const now = performance.now();
    // Start what is due (bounded by the pool: the rest is dropped).
    while (queue.length && queue[0].at <= now) launch(queue.shift().m, now, true);
    let busy = 0;
    for (const d of dots) if (d.busy) { place(d, now); if (d.busy) busy++; }
    layer.dataset.inFlight = busy;
    layer.dataset.shown = shown;
    layer.dataset.dropped = dropped;
    if (busy || queue.length) requestAnimationFrame(frame);
    else running = false;
  }

  function kick() {
    if (running) return;
    running = true;
    requestAnimationFrame(frame);
  }

  /* Everything in flight disappears (the ring moved, or was scrubbed back). */
  function clear() {
    queue.length = 0;
    for (const d of dots) { d.busy = false; d.g.style.display = 'none'; }
  }

  function init(opts) {
    o = opts;
    layer = opts.layer;
    makePool();
  }

  window.ReplMessages = { CFG, init, ingest, clear, stats: () => ({ shown, dropped, pool: dots.length }) };
})();

/*
 * replicacao dashboard — the API token (coordinator --api-token-file).
 *
 * Without a token configured nothing here shows: the coordinator answers
 * every call, and no call is ever answered 401. When one is, the first 401
 * opens a small form asking for the token; it is tried on GET /api/cluster
 * and, once accepted, kept in sessionStorage (this tab, until it closes:
 * a reload stays logged in) and sent as "Authorization: Bearer" on every
 * call, and as ?token= on the WebSocket (a browser cannot set headers on a
 * WebSocket). A refused token says so and the form asks again.
 *
 * window.ReplAuth: headers(h), wsUrl(url), login() -> Promise (one form at
 * a time: every caller waiting on it resumes after the login), onLogin(fn),
 * waiting().
 */
(() => {
  'use strict';

  const KEY = 'replicacao.api-token';
  const $ = (s) => document.querySelector(s);
  let pending = null;      // the login in progress: {promise, resolve}
  let memory = '';         // where sessionStorage is unavailable: this page only
  const listeners = [];

  function token() {
    try { return sessionStorage.getItem(KEY) || memory; } catch (_) { return memory; }
  }

  function keep(t) {
    memory = t;
    try {
      if (t) sessionStorage.setItem(KEY, t);
      else sessionStorage.removeItem(KEY);
    } catch (_) { /* memory only */ }
  }

  function headers(h) {
    const t = token();
    return t ? Object.assign({}, h || {}, { Authorization: `Bearer ${t}` }) : h;
  }

  function wsUrl(url) {
    const t = token();
    return t ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(t)}` : url;
  }

  function showError(text) {
    const e = $('#auth-error');
    e.textContent = text;
    e.hidden = !text;
  }

  /* Does the coordinator take this token? 'ok', 'refused' or a reason. */
  async function tryToken(t) {
    try {
      const res = await fetch('/api/cluster', { headers: { Authorization: `Bearer ${t}` }, cache: 'no-store' });
      if (res.ok) return 'ok';
      if (res.status === 401) return 'refused';
      return `the coordinator answered ${res.status}`;
    } catch (err) {
      return `network error (${err.message})`;
    }
  }

  async function submit(e) {
    e.preventDefault();
    if (!pending) return;
    const input = $('#auth-token');
    const t = input.value.trim();
    if (!t) { showError('Enter the token.'); input.focus(); return; }
    const btn = $('#auth-submit');
    btn.disabled = true;
    showError('');
    const verdict = await tryToken(t);
    btn.disabled = false;
    if (verdict !== 'ok') {
      showError(verdict === 'refused'
        ? 'That token was refused (401 unauthorized). Check it and try again.'
        : `Could not check the token: ${verdict}.`);
      input.select();
      input.focus();
      return;
    }
    keep(t);
    input.value = '';
    $('#auth').hidden = true;
    const p = pending;
    pending = null;
    p.resolve();
    for (const fn of listeners) fn();
  }

  /* A call was answered 401: ask for the token (once, however many calls
   * wait); resolves when one is accepted. */
  function login() {
    if (pending) return pending.promise;
    const hadToken = !!token();
    keep('');
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    pending = { promise, resolve };
    showError(hadToken ? 'The token kept for this session is no longer accepted: enter it again.' : '');
    $('#auth').hidden = false;
    $('#auth-token').focus();
    return promise;
  }

  document.getElementById('auth-form').addEventListener('submit', submit);

  window.ReplAuth = {
    headers, wsUrl, login,
    onLogin: (fn) => listeners.push(fn),
    waiting: () => pending !== null,   // the form is up
  };
})();

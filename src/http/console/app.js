// The cmpp-gateway console. Every value that comes from the API is put into the page as text
// (textContent, or a Text node through el()); nothing is ever parsed as HTML.
'use strict';

(() => {
  const KEY_STORAGE = 'cmpp-gateway-api-key';
  const STATS_EVERY_MS = 3000;
  const LIST_EVERY_MS = 5000;
  const PAGE_SIZE = 25;

  const $ = (selector, root = document) => root.querySelector(selector);

  /** An element with attributes and children; strings become Text nodes, never markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const pad = (n) => String(n).padStart(2, '0');
  function time(ms) {
    const d = new Date(Number(ms));
    if (!ms || Number.isNaN(d.getTime())) return '';
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }
  const entryMs = (entryId) => Number(String(entryId).split('-')[0]);

  // ---- API and the key --------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const field = body && body.field ? `${body.field}: ` : '';
      super(field + ((body && body.error) || `HTTP ${status}`));
      this.status = status;
      this.field = body && body.field;
    }
  }

  let keyPrompt = null;

  /** Asks for the key once, however many calls were refused meanwhile. */
  function askForKey(reason) {
    if (!keyPrompt) {
      keyPrompt = new Promise((resolve) => {
        const dialog = $('#login');
        $('#login-reason').textContent = reason;
        const form = $('#login-form');
        const input = $('#login-key');
        input.value = '';
        const done = (event) => {
          event.preventDefault();
          const key = input.value.trim();
          if (!key) return;
          sessionStorage.setItem(KEY_STORAGE, key);
          form.removeEventListener('submit', done);
          dialog.close();
          keyPrompt = null;
          $('#forget-key').hidden = false;
          resolve();
        };
        form.addEventListener('submit', done);
        // Escape must not leave the page without a key and every call waiting.
        dialog.addEventListener('cancel', (e) => e.preventDefault(), { once: true });
        dialog.showModal();
        input.focus();
      });
    }
    return keyPrompt;
  }

  /** A JSON call with the key; a 401 asks for the key and tries again. */
  async function api(path, options = {}) {
    for (;;) {
      const headers = { Accept: 'application/json', ...(options.headers || {}) };
      const key = sessionStorage.getItem(KEY_STORAGE);
      if (key) headers.Authorization = `Bearer ${key}`;
      const resp = await fetch(path, { ...options, headers });
      if (resp.status === 401) {
        sessionStorage.removeItem(KEY_STORAGE);
        await askForKey(key ? 'That key was refused. Enter a valid API key.'
          : 'This gateway needs an API key.');
        continue;
      }
      let body = null;
      try { body = await resp.json(); } catch (_) { /* an empty or non-JSON answer */ }
      if (!resp.ok) throw new ApiError(resp.status, body);
      return body;
    }
  }

  const query = (params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : '';
  };

  // ---- Segments: the server's rule (src/text/segment.rs), so the form shows what will go out

  let sendConfig = {
    prefer_gbk: false, ascii_segment_chars: 153, wide_udh_reference: false,
    max_segments: 10, max_recipients: 100, src_ext_max_digits: 21,
  };

  let gbkChars = null;
  /** Every character a GBK byte pair decodes to: exactly those GBK carries both ways. */
  function gbkSet() {
    if (gbkChars) return gbkChars;
    const decoder = new TextDecoder('gbk');
    const pair = new Uint8Array(2);
    gbkChars = new Set(['\u20ac']); // the one-byte 0x80
    for (let lead = 0x81; lead <= 0xfe; lead++) {
      for (let trail = 0x40; trail <= 0xfe; trail++) {
        if (trail === 0x7f) continue;
        pair[0] = lead; pair[1] = trail;
        const ch = decoder.decode(pair);
        if (ch !== '\ufffd' && [...ch].length === 1) gbkChars.add(ch);
      }
    }
    return gbkChars;
  }

  const isAscii = (text) => /^[\x00-\x7f]*$/.test(text);

  function chooseCoding(text) {
    if (isAscii(text)) return 'ascii';
    if (sendConfig.prefer_gbk) {
      const set = gbkSet();
      if ([...text].every((ch) => isAscii(ch) || set.has(ch))) return 'gbk';
    }
    return 'ucs2';
  }

  /** Bytes of each indivisible unit: a part never ends inside one. */
  function units(text, coding) {
    return [...text].map((ch) => {
      if (coding === 'ascii') return 1;
      if (coding === 'ucs2') return ch.codePointAt(0) > 0xffff ? 4 : 2;
      return isAscii(ch) || ch === '\u20ac' ? 1 : 2; // gbk
    });
  }

  function segmentCount(text, coding) {
    const udh = sendConfig.wide_udh_reference ? 7 : 6;
    const [single, perPart] = coding === 'ascii'
      ? [159, sendConfig.ascii_segment_chars - (sendConfig.wide_udh_reference ? 1 : 0)]
      : [140, coding === 'ucs2' ? (140 - udh) & ~1 : 140 - udh];
    const sizes = units(text, coding);
    if (sizes.reduce((a, b) => a + b, 0) <= single) return 1;
    let parts = 0;
    let used = 0;
    for (const size of sizes) {
      if (used + size > perPart) { parts += 1; used = 0; }
      used += size;
    }
    return parts + (used > 0 ? 1 : 0);
  }

  function updateCount() {
    const text = $('#send-text').value;
    const coding = chooseCoding(text);
    const segments = text ? segmentCount(text, coding) : 0;
    const chars = [...text].length;
    const out = $('#send-count');
    out.textContent = `${chars} character${chars === 1 ? '' : 's'} · ` +
      `${segments} segment${segments === 1 ? '' : 's'} · ${coding.toUpperCase()}`;
    out.dataset.segments = segments;
    out.dataset.coding = coding;
    out.classList.toggle('error', segments > sendConfig.max_segments);
    if (segments > sendConfig.max_segments) out.append(` (at most ${sendConfig.max_segments})`);
  }

  async function send(event) {
    event.preventDefault();
    const form = event.target;
    const result = $('#send-result');
    result.replaceChildren();
    for (const f of form.querySelectorAll('[aria-invalid]')) f.removeAttribute('aria-invalid');
    const to = form.to.value.split(/[\s,;]+/).filter(Boolean);
    const body = { to, text: form.text.value };
    if (form.src_ext.value.trim()) body.src_ext = form.src_ext.value.trim();
    $('#send-button').disabled = true;
    try {
      const answer = await api('/v1/messages', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      result.append(el('p', { class: 'ok' }, `Accepted ${answer.messages.length} message(s):`),
        el('ul', { class: 'ids' }, answer.messages.map((m) => el('li', null,
          el('button', { type: 'button', class: 'link', onclick: () => openMessage(m.id) }, m.id),
          ` → ${m.to} (${m.segments} segment${m.segments === 1 ? '' : 's'})`))));
      lists.messages.reload();
    } catch (e) {
      result.append(el('p', { class: 'error', role: 'alert' }, e.message));
      const field = e.field && form.elements[e.field];
      if (field) field.setAttribute('aria-invalid', 'true');
    } finally {
      $('#send-button').disabled = false;
    }
  }

  // ---- Cards --------------------------------------------------------------------------------

  const fmtRate = (v) => (v === undefined || v === null ? '–' : v >= 100 ? Math.round(v) : v.toFixed(1));

  function showStats(s) {
    const link = s.link;
    $('#card-link').textContent = link.state;
    $('#card-link').className = `big state-${link.state}`;
    $('#card-link-since').textContent = link.since
      ? `since ${time(link.since)} (${ago(link.since)})${link.reason ? ` · ${link.reason}` : ''}` : 'no link in this instance';
    const pill = $('#link-pill');
    pill.textContent = `link ${link.state}`;
    pill.className = `pill state-${link.state}`;
    showChannels(s.channels || []);
    $('#card-window').textContent = link.window ? `${link.window.in_flight} / ${link.window.size}` : '–';
    $('#card-out').textContent = fmtRate(link.rates && link.rates.submits_ok_per_s);
    $('#card-in').textContent = fmtRate(link.rates && link.rates.delivers_per_s);
    const hour = s.last_hour;
    $('#card-ratio').textContent = hour.delivery_ratio === null ? '–' : `${(hour.delivery_ratio * 100).toFixed(1)} %`;
    $('#card-ratio-sub').textContent = `${hour.delivered} delivered · ${hour.failed} failed`;
    $('#card-backlog').textContent = s.backlog;
    $('#card-dead').textContent = s.dead_letters;
    $('#stats-updated').textContent = `Updated ${time(s.at)}`;
  }

  /** Under the link: per channel "name: held here h / allowed K", then one row per held slot. */
  function showChannels(channels) {
    $('#card-link-channels').replaceChildren(...channels.map((c) => el('div', { class: 'channel' },
      el('p', { class: 'sub channel-line' }, `${c.name}: held here ${c.held_here} / allowed ${c.allowed}`),
      c.links.length === 0 ? null : el('ul', { class: 'slots' }, c.links.map((l) => el('li', {
        class: 'slot',
        title: l.since ? `since ${time(l.since)}${l.reason ? ` · ${l.reason}` : ''}` : l.reason,
      },
      `slot ${l.slot} `,
      el('span', { class: `state-${l.state}` }, l.state),
      ` · ${l.window.in_flight} / ${l.window.size}`))))));
  }

  async function pollStats() {
    if (!document.hidden) {
      try {
        showStats(await api('/v1/stats'));
      } catch (e) {
        $('#stats-updated').textContent = `Cannot read the stats: ${e.message}`;
      }
    }
    setTimeout(pollStats, STATS_EVERY_MS);
  }

  // ---- Lists --------------------------------------------------------------------------------

  const badge = (status) => (status ? el('span', { class: `badge status-${status}` }, status) : '');

  /** The text of a message or MO, or its hex when it was binary. */
  function content(text, hex, coding) {
    if (text) return el('span', { class: 'text' }, text);
    if (hex) return el('span', { class: 'text mono' }, `${coding || 'hex'}: ${hex}`);
    return el('span', { class: 'muted' }, '—');
  }

  /** One table column: a header and how to fill its cell for an item. */
  const col = (label, cell, cls) => ({ label, cell, cls });

  const LISTS = {
    messages: {
      path: '/v1/messages',
      empty: 'No messages.',
      open: (m) => openMessage(m.id, m),
      columns: [
        col('Queued', (m) => time(m.queued_at || (m.stream_id && entryMs(m.stream_id))), 'nowrap'),
        col('To', (m) => m.to, 'nowrap'),
        col('Status', (m) => badge(m.status)),
        col('Seg.', (m) => m.segments ?? '', 'num'),
        col('Text', (m) => content(m.text, m.hex, m.coding), 'wide'),
        col('Id', (m) => m.id, 'mono'),
      ],
    },
    mo: {
      path: '/v1/mo',
      empty: 'No MO messages.',
      columns: [
        col('Received', (e) => time(e.fields.received_at || entryMs(e.entry_id)), 'nowrap'),
        col('From', (e) => e.fields.from, 'nowrap'),
        col('To', (e) => e.fields.to, 'nowrap'),
        col('Text', (e) => content(e.fields.text, e.fields.hex, e.fields.coding), 'wide'),
        col('Parts', (e) => `${e.fields.parts}/${e.fields.total}${e.fields.partial === '1' ? ' partial' : ''}`, 'num'),
      ],
    },
    reports: {
      path: '/v1/reports',
      empty: 'No reports.',
      columns: [
        col('Received', (e) => time(e.fields.received_at || entryMs(e.entry_id)), 'nowrap'),
        col('To', (e) => e.fields.to || e.fields.dest, 'nowrap'),
        col('Stat', (e) => e.fields.stat || (e.fields.malformed === '1' ? 'malformed' : '')),
        col('Outcome', (e) => badge(e.fields.status)),
        col('Segment', (e) => (e.fields.segment ? `${e.fields.segment}/${e.fields.segments}` : ''), 'num'),
        col('Message', (e) => (e.fields.id
          ? el('button', { type: 'button', class: 'link', onclick: () => openMessage(e.fields.id) }, e.fields.id)
          : el('span', { class: 'muted' }, 'unmatched')), 'mono'),
        col('Msg_Id', (e) => e.fields.msg_id, 'mono'),
      ],
    },
    dead: {
      path: '/v1/dead',
      empty: 'No dead letters.',
      columns: [
        col('Failed', (e) => time(e.fields.failed_at || entryMs(e.entry_id)), 'nowrap'),
        col('Id', (e) => e.fields.message_id || e.fields.id || e.fields.stream_id, 'mono'),
        col('To', (e) => e.fields.to, 'nowrap'),
        col('Status', (e) => badge(e.fields.status)),
        col('Reason', (e) => e.fields.reason, 'wide'),
        col('Text', (e) => content(e.fields.text, e.fields.hex, e.fields.coding), 'wide'),
      ],
    },
  };

  /** A paged table: cursors of the pages seen, so Newer goes back and Older goes on. */
  class List {
    constructor(name) {
      this.name = name;
      this.spec = LISTS[name];
      this.root = $(`.list[data-list="${name}"]`);
      this.search = {};
      this.cursors = [null];
      this.next = null;
      this.loaded = false;
      // Only the latest request's answer is shown: a search must not lose to a refresh.
      this.latest = 0;
    }

    reload() { this.cursors = [null]; return this.load(); }

    older() { if (this.next) { this.cursors.push(this.next); this.load(); } }

    newer() { if (this.cursors.length > 1) { this.cursors.pop(); this.load(); } }

    async load() {
      const request = ++this.latest;
      const cursor = this.cursors[this.cursors.length - 1];
      this.loaded = true;
      try {
        const page = await api(this.spec.path + query({ ...this.search, cursor, limit: PAGE_SIZE }));
        if (request !== this.latest) return;
        this.next = page.next_cursor;
        this.render(page.items);
      } catch (e) {
        if (request === this.latest) this.root.replaceChildren(el('p', { class: 'error', role: 'alert' }, e.message));
      }
    }

    render(items) {
      const { columns, open, empty } = this.spec;
      const rows = items.map((item) => {
        const tr = el('tr', open ? {
          tabindex: 0, class: 'clickable', onclick: () => open(item),
          onkeydown: (e) => { if (e.key === 'Enter') open(item); },
        } : null, columns.map((c) => el('td', { class: c.cls, 'data-label': c.label }, c.cell(item))));
        return tr;
      });
      const table = el('table', null,
        el('thead', null, el('tr', null, columns.map((c) => el('th', { class: c.cls === 'num' ? 'num' : null }, c.label)))),
        el('tbody', null, rows));
      const page = this.cursors.length;
      const pager = el('div', { class: 'pager' },
        el('button', { type: 'button', class: 'quiet', disabled: page === 1, onclick: () => this.newer() }, '← Newer'),
        el('span', { class: 'muted' }, `Page ${page}`),
        el('button', { type: 'button', class: 'quiet', onclick: () => this.reload() }, 'Refresh'),
        el('button', { type: 'button', class: 'quiet', disabled: !this.next, onclick: () => this.older() }, 'Older →'));
      this.root.replaceChildren(items.length ? el('div', { class: 'table-wrap' }, table) : el('p', { class: 'muted empty' }, empty), pager);
    }
  }

  const lists = Object.fromEntries(Object.keys(LISTS).map((name) => [name, new List(name)]));

  function bindSearch(form) {
    const list = lists[form.dataset.list];
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      list.search = Object.fromEntries(new FormData(form));
      list.reload();
    });
    form.addEventListener('reset', () => {
      list.search = {};
      setTimeout(() => list.reload());
    });
  }

  // The first page of the visible list follows new traffic; later pages stay put while read.
  function pollList() {
    const visible = Object.values(lists).find((l) => !l.root.closest('.tab').hidden);
    if (visible && !document.hidden && visible.cursors.length === 1 && !$('#detail').open) visible.load();
    setTimeout(pollList, LIST_EVERY_MS);
  }

  // ---- One message in full ------------------------------------------------------------------

  const field = (label, value) => (value === undefined || value === null || value === ''
    ? null : [el('dt', null, label), el('dd', null, value)]);

  async function openMessage(id, row) {
    const dialog = $('#detail');
    const body = $('#detail-body');
    $('#detail-title').textContent = `Message ${id}`;
    body.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    if (!dialog.open) dialog.showModal();
    try {
      const s = await api(`/v1/messages/${encodeURIComponent(id)}`);
      const segments = el('table', { class: 'segments' },
        el('thead', null, el('tr', null, ['#', 'Msg_Id', 'Result', 'Stat', 'Submitted', 'Reported']
          .map((h) => el('th', null, h)))),
        el('tbody', null, s.segments.map((g) => el('tr', null,
          el('td', { 'data-label': '#' }, g.segment),
          el('td', { class: 'mono', 'data-label': 'Msg_Id' }, g.msg_id || '—'),
          el('td', { 'data-label': 'Result' }, g.result ?? '—'),
          el('td', { 'data-label': 'Stat' }, g.stat || '—'),
          el('td', { class: 'nowrap', 'data-label': 'Submitted' }, time(g.submitted_at) || '—'),
          el('td', { class: 'nowrap', 'data-label': 'Reported' }, time(g.reported_at) || '—')))));
      body.replaceChildren(
        el('dl', { class: 'facts' },
          field('Status', badge(s.status)), field('To', s.to), field('Error', s.error),
          field('Queued', time(s.queued_at)), field('Submitted', time(s.submitted_at)),
          field('Final', time(s.final_at)), field('Updated', time(s.updated_at)),
          field('Stream entry', s.stream_id)),
        row && (row.text || row.hex) ? el('pre', { class: 'message-text' }, row.text || `${row.coding}: ${row.hex}`) : null,
        el('h3', null, 'Segments'),
        s.segments.length ? el('div', { class: 'table-wrap' }, segments) : el('p', { class: 'muted' }, 'No segments recorded yet.'));
    } catch (e) {
      body.replaceChildren(el('p', { class: 'error', role: 'alert' }, e.status === 404 ? 'No such message (expired, or never sent).' : e.message));
    }
  }

  // ---- Tabs and start -----------------------------------------------------------------------

  function showTab(name) {
    for (const button of document.querySelectorAll('.tabs button')) {
      if (button.dataset.tab === name) button.setAttribute('aria-current', 'page');
      else button.removeAttribute('aria-current');
    }
    for (const tab of document.querySelectorAll('.tab')) tab.hidden = tab.id !== `tab-${name}`;
    const list = lists[name];
    if (list && !list.loaded) list.load();
  }

  async function start() {
    for (const button of document.querySelectorAll('.tabs button')) {
      button.addEventListener('click', () => showTab(button.dataset.tab));
    }
    for (const form of document.querySelectorAll('form.search')) bindSearch(form);
    $('#send-form').addEventListener('submit', send);
    $('#send-text').addEventListener('input', updateCount);
    $('#detail-close').addEventListener('click', () => $('#detail').close());
    $('#forget-key').hidden = !sessionStorage.getItem(KEY_STORAGE);
    $('#forget-key').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORAGE);
      window.location.reload();
    });
    updateCount();
    try {
      sendConfig = await api('/v1/config');
      $('#send-ext').maxLength = sendConfig.src_ext_max_digits;
      updateCount();
    } catch (e) {
      $('#send-count').textContent = `Cannot read the send settings: ${e.message}`;
    }
    pollStats();
    setTimeout(pollList, LIST_EVERY_MS);
  }

  start();
})();

// Xplore Face Auth console: a hand-written script over central's JSON API
// (docs/console.md). The admin's token lives in sessionStorage and goes
// out only as an Authorization header, never in a URL. Every value from
// the API reaches the page as text (textContent), never as HTML.
'use strict';

(function () {
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const signoutBtn = document.getElementById('signout');

  // ---- session ---------------------------------------------------------
  const session = {
    get token() { return sessionStorage.getItem('faceauth.token') || ''; },
    get role() { return sessionStorage.getItem('faceauth.role') || ''; },
    get subject() { return sessionStorage.getItem('faceauth.subject') || ''; },
    set(token, role, subject) {
      sessionStorage.setItem('faceauth.token', token);
      sessionStorage.setItem('faceauth.role', role);
      sessionStorage.setItem('faceauth.subject', subject);
    },
    clear() {
      ['faceauth.token', 'faceauth.role', 'faceauth.subject', 'faceauth.lastDeletion'].forEach((k) => sessionStorage.removeItem(k));
    },
  };

  // ---- DOM helpers -----------------------------------------------------
  // h builds an element; attrs holds properties (on* are listeners) and
  // children are nodes or text.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k in el && k !== 'list') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const svgNS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }
  // put appends to the page, skipping the empty parts of a conditional.
  function put(...nodes) { main.append(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false)); }
  function msg(kind, text) { return h('div', { class: 'msg ' + kind, role: kind === 'error' ? 'alert' : 'status' }, text); }
  function fmtTime(t) {
    if (!t) return '—';
    const d = new Date(t);
    return isNaN(d) || d.getFullYear() < 2000 ? '—' : d.toLocaleString();
  }
  function ago(t) {
    const d = new Date(t);
    if (!t || isNaN(d) || d.getFullYear() < 2000) return '—';
    const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }
  function num(x, digits) { return typeof x === 'number' ? x.toFixed(digits) : '—'; }
  // sitesText says where a user goes: its sites' edges, or every edge.
  function sitesText(sites) { return sites && sites.length ? sites.join(', ') : '— (every edge)'; }

  // ---- API -------------------------------------------------------------
  class APIError extends Error {
    constructor(status, body) {
      super((body && body.error) || ('The server answered ' + status + '.'));
      this.status = status;
      this.code = body && body.code;
    }
  }
  // api calls central with the session's token; body is a FormData or
  // nothing. A 401 ends the session.
  async function api(method, path, body, opts) {
    const headers = { Authorization: 'Bearer ' + ((opts && opts.token) || session.token) };
    const resp = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
    if (opts && opts.blob && resp.ok) return resp.blob();
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      if (resp.status === 401 && !(opts && opts.token)) {
        session.clear();
        route('Your session ended: ' + ((data && data.error) || 'the token is no longer valid.'));
      }
      throw new APIError(resp.status, data);
    }
    return data;
  }
  function form(fields) {
    const fd = new FormData();
    for (const [k, v] of Object.entries(fields)) {
      if (Array.isArray(v)) v.forEach((f) => fd.append(k, f.blob || f, f.name || 'photo.jpg'));
      else if (v !== undefined && v !== null) fd.append(k, v);
    }
    return fd;
  }

  // ---- routing ---------------------------------------------------------
  let timers = [];
  let cleanups = [];
  function every(ms, fn) { fn(); timers.push(setInterval(fn, ms)); }
  function onLeave(fn) { cleanups.push(fn); }

  const pages = {
    users: { role: 'admin', render: usersPage },
    user: { role: 'admin', render: userPage },
    register: { role: 'admin', render: registerPage },
    try: { role: 'verify', render: tryPage },
    edges: { role: 'admin', render: edgesPage },
    erasure: { role: 'admin', render: erasurePage },
    tokens: { role: 'admin', render: tokensPage },
  };

  function route(notice) {
    timers.forEach(clearInterval);
    timers = [];
    cleanups.forEach((fn) => fn());
    cleanups = [];
    main.replaceChildren();
    if (!session.token) {
      nav.hidden = true;
      signoutBtn.hidden = true;
      who.textContent = '';
      signinPage(notice);
      return;
    }
    nav.hidden = false;
    signoutBtn.hidden = false;
    who.textContent = session.subject + ' (' + session.role + ')';
    for (const a of nav.querySelectorAll('a')) {
      a.hidden = a.dataset.role === 'admin' && session.role !== 'admin';
    }
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    let name = parts[0] || (session.role === 'admin' ? 'users' : 'try');
    if (name === 'users' && parts[1]) name = 'user';
    const page = pages[name] || pages[session.role === 'admin' ? 'users' : 'try'];
    for (const a of nav.querySelectorAll('a')) {
      a.classList.toggle('active', a.getAttribute('href') === '#/' + (name === 'user' ? 'users' : name));
    }
    document.body.dataset.page = name;
    if (notice) put(msg('info', notice));
    if (page.role === 'admin' && session.role !== 'admin') {
      // The server refuses anyway; say so before asking it.
      put(msg('error', 'This page needs an admin token; yours has the ' + session.role + ' role.'));
    }
    page.render(decodeURIComponent(parts.slice(1).join('/')));
  }
  window.addEventListener('hashchange', () => route());
  // Dropping the hash with replaceState fires no hashchange: setting
  // location.hash would render the sign-in page a second time, after the
  // notice, replacing the form under the user's (or a test's) fingers.
  signoutBtn.addEventListener('click', () => { session.clear(); history.replaceState(null, '', location.pathname + location.search); route('Signed out.'); });

  // ---- sign in ---------------------------------------------------------
  function signinPage(notice) {
    const input = h('input', { type: 'password', id: 'token', class: 'wide', autocomplete: 'off', required: true, placeholder: 'fa1.…' });
    const out = h('div');
    const f = h('form', { class: 'row', id: 'signin', onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      const token = input.value.trim();
      try {
        const me = await api('GET', '/api/whoami', undefined, { token });
        session.set(token, me.role, me.subject);
        route();
      } catch (e) {
        out.append(msg('error', 'Sign-in refused: ' + e.message));
      }
    } }, h('label', {}, 'Bearer token', input), h('button', { class: 'primary', type: 'submit', id: 'signin-submit' }, 'Sign in'));
    put(
      h('h1', {}, 'Sign in'),
      notice ? msg('info', notice) : null,
      h('section', { class: 'card' },
        h('p', { class: 'muted' }, 'Paste a token from ', h('code', {}, 'central token create --role admin'),
          '. It is kept in this tab only (session storage) and sent as a bearer header. A verify token opens only the try-out page.'),
        f, out));
    input.focus();
  }

  // ---- users -----------------------------------------------------------
  function usersPage() {
    const q = h('input', { type: 'search', id: 'user-search', placeholder: 'id or name', class: 'wide' });
    const siteFilter = h('input', { type: 'search', id: 'user-site-filter', placeholder: 'any site' });
    const body = h('tbody');
    const status = h('p', { class: 'muted' });
    const prev = h('button', { type: 'button', disabled: true }, '← Previous');
    const next = h('button', { type: 'button', disabled: true }, 'Next →');
    const err = h('div');
    let cursors = [''];
    let nextCursor = '';
    async function load() {
      err.replaceChildren();
      const after = cursors[cursors.length - 1];
      const params = new URLSearchParams({ limit: '50' });
      if (q.value.trim()) params.set('q', q.value.trim());
      if (siteFilter.value.trim()) params.set('site', siteFilter.value.trim());
      if (after) params.set('after', after);
      try {
        const t0 = performance.now();
        const page = await api('GET', '/api/users?' + params);
        const ms = Math.round(performance.now() - t0);
        body.replaceChildren(...page.users.map((u) => h('tr', { class: 'link', dataset: { user: u.user_id }, onclick: () => { location.hash = '#/users/' + encodeURIComponent(u.user_id); } },
          h('td', {}, h('a', { href: '#/users/' + encodeURIComponent(u.user_id) }, u.user_id)),
          h('td', {}, u.name || ''),
          h('td', { class: u.sites ? 'sites' : 'sites muted' }, sitesText(u.sites)),
          h('td', { class: 'num' }, u.references),
          h('td', { class: 'num' }, u.revision),
          h('td', {}, fmtTime(u.updated_at)))));
        if (!page.users.length) body.append(h('tr', {}, h('td', { colSpan: 6, class: 'muted' }, q.value.trim() || siteFilter.value.trim() ? 'No user matches.' : 'No users yet.')));
        nextCursor = page.next || '';
        next.disabled = !nextCursor;
        prev.disabled = cursors.length < 2;
        status.textContent = 'Page ' + cursors.length + ', ' + page.users.length + ' users (' + ms + ' ms).';
      } catch (e) { err.append(msg('error', e.message)); }
    }
    let debounce;
    for (const input of [q, siteFilter]) {
      input.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(() => { cursors = ['']; load(); }, 250); });
    }
    next.addEventListener('click', () => { cursors.push(nextCursor); load(); });
    prev.addEventListener('click', () => { cursors.pop(); load(); });
    put(h('h1', {}, 'Users'),
      h('div', { class: 'row' }, h('label', {}, 'Search', q), h('label', { title: 'only the users of this site' }, 'Site', siteFilter), h('a', { href: '#/register' }, h('button', { type: 'button', class: 'primary' }, 'Register a user'))),
      err,
      h('table', { id: 'users' }, h('thead', {}, h('tr', {}, h('th', {}, 'User id'), h('th', {}, 'Name'), h('th', {}, 'Sites'), h('th', { class: 'num' }, 'Photos'), h('th', { class: 'num' }, 'Revision'), h('th', {}, 'Updated'))), body),
      h('div', { class: 'row' }, prev, next, status));
    load();
  }

  async function userPage(id) {
    const out = h('div');
    put(h('h1', {}, 'User ', h('span', { id: 'user-id' }, id)), out);
    let user;
    try { user = await api('GET', '/api/users/' + encodeURIComponent(id)); } catch (e) { out.append(msg('error', e.message)); return; }
    const urls = [];
    onLeave(() => urls.forEach((u) => URL.revokeObjectURL(u)));
    const note = h('div');
    const name = h('input', { type: 'text', id: 'rename', value: user.name || '', class: 'wide' });
    const renameForm = h('form', { class: 'row', onsubmit: async (ev) => {
      ev.preventDefault();
      note.replaceChildren();
      try {
        const r = await api('PATCH', '/api/users/' + encodeURIComponent(id), form({ name: name.value }));
        note.append(msg('success', 'Renamed to “' + (r.name || '') + '” (revision ' + r.revision + ').'));
      } catch (e) { note.append(msg('error', e.message)); }
    } }, h('label', {}, 'Display name', name), h('button', { type: 'submit', id: 'rename-submit' }, 'Rename'));

    // The sites: only their edges receive the user; none sends it to every
    // edge. The edges of the sites it leaves that serve none of the new
    // ones erase it (the erasure page lists the change).
    const siteShown = h('dd', { id: 'user-sites' }, sitesText(user.sites));
    const revShown = h('dd', {}, user.revision);
    const site = h('input', { type: 'text', id: 'sites', value: (user.sites || []).join(', '), placeholder: 'every edge', title: 'sites, comma-separated' });
    let current = user.sites || [];
    const heldBy = (sites) => sites && sites.length ? 'the edges of ' + sites.join(', ') : 'every edge';
    const eraseWhere = h('span', { id: 'erase-where' }, heldBy(user.sites));
    async function setSites(value) {
      note.replaceChildren();
      try {
        const r = await api('PUT', '/api/users/' + encodeURIComponent(id) + '/sites', form({ sites: value }));
        siteShown.textContent = sitesText(r.sites);
        revShown.textContent = r.revision;
        site.value = r.sites.join(', ');
        note.append(msg('success', !r.changed ? 'The sites are unchanged.'
          : (r.sites.length ? 'Sites set to ' + r.sites.join(', ') + ': only their edges receive ' + r.user_id : 'Sites cleared: every edge receives ' + r.user_id) + ' (revision ' + r.revision + ').'));
        // Leaving a site (or every edge, for a user of no site) makes the
        // edges that held the user and serve none of the new sites erase
        // it; a user sent to every edge stays everywhere.
        const left = current.filter((x) => !r.sites.includes(x));
        if (r.changed && r.sites.length && (left.length || !current.length)) {
          note.append(h('p', { id: 'sites-left' }, 'The edges ' + (left.length ? 'of ' + left.join(', ') + ' ' : '') + 'that serve none of ' + r.sites.join(', ') + ' erase ' + r.user_id + ': ',
            h('a', { href: '#/erasure' }, 'their receipts are on the Erasure page'), '.'));
        }
        current = r.sites;
        eraseWhere.textContent = heldBy(r.sites);
      } catch (e) { note.append(msg('error', e.message)); }
    }
    const siteForm = h('form', { class: 'row', onsubmit: (ev) => { ev.preventDefault(); setSites(site.value.trim()); } },
      h('label', {}, 'Sites (comma-separated)', site), h('button', { type: 'submit', id: 'sites-submit' }, 'Set sites'),
      h('button', { type: 'button', id: 'sites-clear', onclick: () => setSites('') }, 'Clear (every edge)'));

    const thumbs = h('div', { class: 'thumbs', id: 'thumbs' });
    for (const img of user.images) {
      const pic = h('img', { alt: 'reference photo ' + img.image_id.slice(0, 8) });
      api('GET', '/api/users/' + encodeURIComponent(id) + '/images/' + img.image_id, undefined, { blob: true })
        .then((b) => { const u = URL.createObjectURL(b); urls.push(u); pic.src = u; })
        .catch((e) => { pic.alt = e.message; });
      thumbs.append(h('div', { class: 'thumb' }, pic,
        h('div', {}, 'quality ' + num(img.quality, 2) + ', detection ' + num(img.detection_score, 2)),
        h('div', { class: 'muted' }, fmtTime(img.added_at)),
        h('button', { type: 'button', onclick: async () => {
          note.replaceChildren();
          try {
            await api('DELETE', '/api/users/' + encodeURIComponent(id) + '/images/' + img.image_id);
            route('Photo removed.');
          } catch (e) { note.append(msg('error', e.message)); }
        } }, 'Remove')));
    }
    const files = h('input', { type: 'file', id: 'add-photos', accept: 'image/*', multiple: true });
    const addForm = h('form', { class: 'row', onsubmit: async (ev) => {
      ev.preventDefault();
      note.replaceChildren();
      if (!files.files.length) { note.append(msg('error', 'Choose one or more photos first.')); return; }
      try {
        const r = await api('POST', '/api/users/' + encodeURIComponent(id) + '/images', form({ image: [...files.files] }));
        route('Photos added: the user now has ' + r.references + '.');
      } catch (e) { note.append(msg('error', e.message)); }
    } }, h('label', {}, 'Add photos', files), h('button', { type: 'submit' }, 'Add'));

    const confirmBtn = h('button', { type: 'button', class: 'danger', id: 'confirm-delete', hidden: true, onclick: async () => {
      note.replaceChildren();
      try {
        const r = await api('DELETE', '/api/users/' + encodeURIComponent(id));
        sessionStorage.setItem('faceauth.lastDeletion', JSON.stringify({ user_id: r.user_id, revision: r.revision }));
        location.hash = '#/erasure';
      } catch (e) { note.append(msg('error', e.message)); }
    } }, 'Yes, erase ' + id + ' everywhere');
    const deleteBtn = h('button', { type: 'button', class: 'danger', id: 'delete-user', onclick: () => { deleteBtn.hidden = true; confirmBtn.hidden = false; } }, 'Delete user');

    out.append(
      h('section', { class: 'card' }, h('dl', { class: 'facts' },
        h('dt', {}, 'Name'), h('dd', {}, user.name || '—'),
        h('dt', {}, 'Sites'), siteShown,
        h('dt', {}, 'Revision'), revShown,
        h('dt', {}, 'Created'), h('dd', {}, fmtTime(user.created_at)),
        h('dt', {}, 'Updated'), h('dd', {}, fmtTime(user.updated_at))), renameForm, siteForm),
      note,
      h('h2', {}, 'Reference photos (' + user.images.length + ')'), thumbs,
      h('h2', {}, 'Add photos'), h('section', { class: 'card' }, addForm),
      h('h2', {}, 'Erase'), h('section', { class: 'card' },
        h('p', { class: 'muted' }, 'Deletes the photos and embeddings here and at every edge that holds them (', eraseWhere, '); the erasure page shows the edges’ purge receipts.'),
        h('div', { class: 'row' }, deleteBtn, confirmBtn)));
  }

  // ---- photos: files, camera, analysis drawing ------------------------
  // camera returns a block with a video preview and a capture button that
  // calls onFrame with a JPEG blob. The stream stops when the page changes.
  function camera(onFrame) {
    const video = h('video', { class: 'camera', autoplay: true, muted: true, playsInline: true, hidden: true });
    const err = h('div');
    let stream = null;
    const capture = h('button', { type: 'button', id: 'cam-capture', disabled: true, onclick: () => {
      const c = document.createElement('canvas');
      c.width = video.videoWidth;
      c.height = video.videoHeight;
      c.getContext('2d').drawImage(video, 0, 0);
      c.toBlob((b) => onFrame(b), 'image/jpeg', 0.92);
    } }, 'Capture frame');
    const stop = () => { if (stream) stream.getTracks().forEach((t) => t.stop()); stream = null; };
    onLeave(stop);
    const start = h('button', { type: 'button', id: 'cam-start', onclick: async () => {
      err.replaceChildren();
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        err.append(msg('error', 'This browser offers no camera here (the console must be opened over https or on localhost).'));
        return;
      }
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: false });
        video.srcObject = stream;
        video.hidden = false;
        capture.disabled = false;
      } catch (e) { err.append(msg('error', 'The camera could not be opened: ' + e.message)); }
    } }, 'Start camera');
    return h('div', {}, video, h('div', { class: 'row' }, start, capture), err);
  }

  // drawAnalysis draws the photo on a canvas with the face boxes: the
  // chosen face in green (red when refused), the others grey.
  function drawAnalysis(canvas, blob, faces, selected, refused) {
    const url = URL.createObjectURL(blob);
    const img = new Image();
    img.onload = () => {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const g = canvas.getContext('2d');
      g.drawImage(img, 0, 0);
      g.lineWidth = Math.max(2, Math.round(img.naturalWidth / 200));
      (faces || []).forEach((f, i) => {
        g.strokeStyle = i === selected ? (refused ? '#d93025' : '#1e8e3e') : (refused ? '#d93025' : '#9aa0a6');
        g.strokeRect(f.box.x1, f.box.y1, f.box.x2 - f.box.x1, f.box.y2 - f.box.y1);
      });
      URL.revokeObjectURL(url);
      canvas.dataset.drawn = String((faces || []).length);
    };
    img.src = url;
  }

  // ---- register --------------------------------------------------------
  function registerPage() {
    const uid = h('input', { type: 'text', id: 'reg-id', required: true, placeholder: 'e.g. alice' });
    const name = h('input', { type: 'text', id: 'reg-name', placeholder: 'Alice Example', class: 'wide' });
    const site = h('input', { type: 'text', id: 'reg-sites', placeholder: 'every edge' });
    const files = h('input', { type: 'file', id: 'reg-files', accept: 'image/*', multiple: true });
    const previews = h('div', { class: 'previews', id: 'previews' });
    const out = h('div', { id: 'reg-result' });
    const save = h('button', { type: 'submit', class: 'primary', id: 'reg-save', disabled: true }, 'Save user');
    let photos = []; // {blob, name, usable}

    function refresh() { save.disabled = !photos.length || photos.some((p) => p.usable !== true); }
    async function add(blob, label) {
      const p = { blob, name: label, usable: null };
      photos.push(p);
      const canvas = h('canvas');
      const verdict = h('div', { class: 'verdict' }, 'Analysing…');
      const remove = h('button', { type: 'button', onclick: () => { photos = photos.filter((x) => x !== p); card.remove(); refresh(); } }, 'Remove');
      const card = h('div', { class: 'preview' }, canvas, h('div', { class: 'muted' }, label), verdict, remove);
      previews.append(card);
      refresh();
      try {
        const a = await api('POST', '/api/analyse', form({ image: [p] }));
        p.usable = a.usable;
        drawAnalysis(canvas, blob, a.faces, a.selected, !a.usable);
        if (a.usable) {
          const f = a.faces[a.selected];
          verdict.replaceChildren(h('span', { class: 'ok' }, 'Usable'), ' — quality ' + num(f.quality, 2) + ', detection ' + num(f.score, 2) + ', ' + a.faces.length + ' face(s) found');
        } else {
          verdict.replaceChildren(h('span', { class: 'bad' }, 'Refused'), ': ' + a.refusal.error + ' (' + a.refusal.code + ')');
        }
      } catch (e) {
        p.usable = false;
        drawAnalysis(canvas, blob, [], -1, true);
        verdict.replaceChildren(h('span', { class: 'bad' }, 'Refused'), ': ' + e.message);
      }
      refresh();
    }
    files.addEventListener('change', () => { [...files.files].forEach((f) => add(f, f.name)); files.value = ''; });
    let n = 0;
    const cam = camera((b) => add(b, 'camera frame ' + (++n) + '.jpg'));
    const f = h('form', { onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      save.disabled = true;
      try {
        const r = await api('POST', '/api/register', form({ user_id: uid.value.trim(), name: name.value, sites: site.value.trim() || undefined, image: photos }));
        out.append(msg('success', (r.created ? 'Registered ' : 'Updated ') + r.user_id + ' with ' + r.references + ' reference photo(s), revision ' + r.revision + '.'));
        photos = [];
        previews.replaceChildren();
        // The answer has no sites: show those the server holds, not the
        // ones typed.
        try {
          const u = await api('GET', '/api/users/' + encodeURIComponent(r.user_id));
          out.append(h('p', {}, 'Sites: ', h('span', { id: 'reg-sites-saved' }, sitesText(u.sites))));
        } catch (e) { out.append(msg('error', 'Saved, but its sites could not be read back: ' + e.message)); }
        out.append(h('a', { href: '#/users/' + encodeURIComponent(r.user_id) }, 'Open ' + r.user_id));
      } catch (e) {
        out.append(msg('error', 'Not saved: ' + e.message));
      }
      refresh();
    } },
    h('section', { class: 'card' }, h('div', { class: 'row' }, h('label', {}, 'User id', uid), h('label', {}, 'Name', name),
      h('label', { title: 'Only the edges of these sites receive the user (comma-separated); empty: every edge' }, 'Sites (optional, comma-separated)', site))),
    h('section', { class: 'card' }, h('h2', {}, 'Photos'),
      h('p', { class: 'muted' }, 'Each photo is analysed as registration would (nothing is stored yet): the box marks the face that would be enrolled.'),
      h('div', { class: 'row' }, h('label', {}, 'From files', files)), cam, previews),
    h('div', { class: 'row' }, save), out);
    put(h('h1', {}, 'Register a user'), f);
  }

  // ---- try it ----------------------------------------------------------
  function tryPage() {
    const mode = h('select', { id: 'try-mode' }, h('option', { value: 'verify' }, 'Verify (1:1)'), h('option', { value: 'identify' }, 'Identify (1:N)'));
    const uid = h('input', { type: 'text', id: 'try-id', placeholder: 'user id' });
    const uidLabel = h('label', {}, 'User id', uid);
    const file = h('input', { type: 'file', id: 'try-file', accept: 'image/*' });
    const canvas = h('canvas', { id: 'try-canvas' });
    const result = h('div', { id: 'try-result' });
    mode.addEventListener('change', () => { uidLabel.hidden = mode.value !== 'verify'; });
    async function run(blob) {
      result.replaceChildren(msg('info', 'Checking…'));
      const path = '/api/' + mode.value;
      const fields = { image: [{ blob, name: blob.name || 'frame.jpg' }] };
      if (mode.value === 'verify') fields.user_id = uid.value.trim();
      try {
        const r = await api('POST', path, form(fields));
        drawAnalysis(canvas, blob, [r.face], 0, false);
        const facts = [];
        const fact = (k, v) => facts.push(h('dt', {}, k), h('dd', {}, v));
        if (mode.value === 'verify') {
          fact('Result', h('span', { class: r.verified ? 'ok' : 'bad', id: 'try-verdict' }, r.verified ? 'Verified' : 'Not verified'));
          fact('Similarity', typeof r.similarity === 'number'
            ? num(r.similarity, 3) + ' against threshold ' + num(r.threshold, 3)
            : 'not returned by the server (threshold ' + num(r.threshold, 3) + ')');
        } else {
          fact('Matches', r.matches.length
            ? h('span', { id: 'try-verdict' }, r.matches.map((m) => m.user_id + (m.name ? ' (' + m.name + ')' : '') + ' ' + num(m.similarity, 3)).join(', '))
            : h('span', { class: 'bad', id: 'try-verdict' }, 'No match at or above ' + num(r.threshold, 3)));
        }
        fact('Face', 'detection ' + num(r.face.score, 2) + ', quality ' + num(r.face.quality, 2) + ', ' + r.faces + ' face(s) in the photo');
        fact('Liveness', r.liveness ? num(r.liveness.score, 3) + ' against ' + num(r.liveness.threshold, 3) + (r.liveness.live ? ' (live)' : ' (not live)') + ', ' + r.liveness.model : 'not checked by this server');
        fact('Model', r.model);
        result.replaceChildren(h('dl', { class: 'facts' }, facts));
      } catch (e) {
        drawAnalysis(canvas, blob, [], -1, true);
        result.replaceChildren(msg('error', e.message));
      }
    }
    file.addEventListener('change', () => { if (file.files[0]) run(file.files[0]); file.value = ''; });
    put(h('h1', {}, 'Try it'),
      h('section', { class: 'card' },
        h('div', { class: 'row' }, h('label', {}, 'Mode', mode), uidLabel, h('label', {}, 'Photo', file)),
        camera((b) => run(b))),
      h('div', { class: 'previews' }, h('div', { class: 'preview' }, canvas), h('section', { class: 'card' }, result)));
  }

  // ---- edges -----------------------------------------------------------
  const lagHistory = new Map(); // edge id -> [{t, lag}]
  function edgesPage() {
    const body = h('tbody');
    const err = h('div');
    const chart = s('svg', { class: 'chart', id: 'lag-chart', viewBox: '0 0 800 220', preserveAspectRatio: 'none' });
    const legend = h('div', { class: 'legend' });
    const updated = h('p', { class: 'muted' });
    async function poll() {
      try {
        const r = await api('GET', '/api/edges');
        err.replaceChildren();
        const now = Date.now();
        body.replaceChildren(...r.edges.map((e) => h('tr', { dataset: { edge: e.id, state: e.state } },
          h('td', {}, e.id),
          h('td', {}, h('span', { class: 'pill ' + e.state }, e.state)),
          h('td', { class: 'num' }, e.applied_revision),
          h('td', { class: 'num' }, e.lag),
          h('td', {}, ago(e.last_seen)),
          h('td', {}, e.model || '—'),
          // An edge serves its sites' users and those of no site.
          h('td', { class: 'sites' }, e.sites && e.sites.length ? e.sites.join(', ') : '—'),
          h('td', { class: 'num' }, e.token_revocations),
          // Feed messages the edge refused (the signed feed); the title
          // says when the last was and why.
          h('td', { class: 'num', title: e.last_reject ? fmtTime(e.last_reject_at) + ': ' + e.last_reject : '' }, e.feed_rejected !== undefined ? e.feed_rejected : '—'),
          h('td', { class: 'num' }, e.user_count))));
        if (!r.edges.length) body.append(h('tr', {}, h('td', { colSpan: 10, class: 'muted' }, 'No edge has reported yet.')));
        for (const e of r.edges) {
          const hist = lagHistory.get(e.id) || [];
          hist.push({ t: now, lag: e.lag });
          while (hist.length && now - hist[0].t > 10 * 60 * 1000) hist.shift();
          lagHistory.set(e.id, hist);
        }
        drawLag(chart, legend, now);
        updated.textContent = 'Updated ' + new Date(now).toLocaleTimeString() + '; refreshes every 2 s.';
      } catch (e) { err.replaceChildren(msg('error', e.message)); }
    }
    put(h('h1', {}, 'Edges'), err,
      h('table', { id: 'edges' }, h('thead', {}, h('tr', {},
        h('th', {}, 'Edge'), h('th', {}, 'State'), h('th', { class: 'num' }, 'Applied revision'), h('th', { class: 'num' }, 'Lag'),
        h('th', {}, 'Last heartbeat'), h('th', {}, 'Model'), h('th', { title: 'the sites whose users the edge receives, besides those of no site' }, 'Sites'), h('th', { class: 'num' }, 'Revocations version'),
        h('th', { class: 'num' }, 'Feed rejects'), h('th', { class: 'num' }, 'Users'))), body),
      updated,
      h('h2', {}, 'Lag (revisions behind central), last 10 minutes'), chart, legend);
    every(2000, poll);
  }

  // drawLag draws each edge's lag history as a polyline.
  function drawLag(svg, legend, now) {
    const W = 800, H = 220, L = 40, B = 20, T = 10, R = 10;
    const span = 10 * 60 * 1000;
    let maxLag = 4; // whole-number ticks at 0, max/2 and max
    for (const hist of lagHistory.values()) for (const p of hist) maxLag = Math.max(maxLag, p.lag);
    maxLag = Math.ceil(maxLag / 2) * 2;
    const x = (t) => L + (W - L - R) * (1 - (now - t) / span);
    const y = (v) => H - B - (H - B - T) * (v / maxLag);
    const kids = [];
    for (const v of [0, maxLag / 2, maxLag]) {
      kids.push(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }), s('text', { x: 4, y: y(v) + 4 }, Math.round(v)));
    }
    kids.push(s('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }), s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    kids.push(s('text', { x: L, y: H - 4 }, '−10 min'), s('text', { x: W - R - 24, y: H - 4 }, 'now'));
    legend.replaceChildren();
    [...lagHistory.keys()].sort().forEach((id, i) => {
      const pts = lagHistory.get(id).map((p) => x(p.t).toFixed(1) + ',' + y(p.lag).toFixed(1)).join(' ');
      kids.push(s('polyline', { class: 'c' + (i % 6), points: pts }));
      legend.append(h('span', {}, h('span', { class: 'swatch c' + (i % 6) }), id));
    });
    svg.replaceChildren(...kids);
  }

  // ---- erasure ---------------------------------------------------------
  // A deletion record is an erasure, or a site change (moved) that made
  // the edges of the sites left erase the user; both await the same
  // receipts. leftText and remainsText say which.
  function leftText(d) { return d.sites && d.sites.length ? d.sites.join(', ') : 'every edge (no site)'; }
  function remainsText(d) { return d.moved ? sitesText(d.remaining_sites) : '— (erased)'; }
  function erasurePage() {
    const last = JSON.parse(sessionStorage.getItem('faceauth.lastDeletion') || 'null');
    const receipt = h('div', { id: 'receipt' });
    const body = h('tbody');
    const err = h('div');
    async function poll() {
      try {
        if (last) {
          const r = await api('GET', '/api/deletions?limit=1&after=' + Math.max(0, last.revision - 1));
          const d = r.deletions.find((x) => x.revision === last.revision && x.user_id === last.user_id);
          if (!d) {
            receipt.replaceChildren(msg('info', 'The deletion of ' + last.user_id + ' is not listed yet.'));
          } else {
            const done = d.pending.length === 0;
            receipt.replaceChildren(
              h('p', { id: 'receipt-change' }, 'User ', h('strong', {}, d.user_id),
                (d.moved ? ' moved away from ' + leftText(d) + ' to ' + sitesText(d.remaining_sites) : ' erased from ' + leftText(d)) + ' at revision ' + d.revision + ' (' + fmtTime(d.deleted_at) + ').'),
              h('table', { id: 'receipt-edges' }, h('thead', {}, h('tr', {}, h('th', {}, 'Edge'), h('th', {}, 'Purge receipt'))),
                h('tbody', {},
                  d.purged.map((e) => h('tr', { dataset: { edge: e, purged: 'true' } }, h('td', {}, e), h('td', { class: 'ok' }, 'purged'))),
                  d.pending.map((e) => h('tr', { dataset: { edge: e, purged: 'false' } }, h('td', {}, e), h('td', { class: 'warn' }, 'waiting'))))),
              done ? msg('success', d.purged.length ? 'Every known edge has confirmed the purge.' : 'No edge is known; nothing to wait for.') : msg('info', 'Waiting for ' + d.pending.length + ' edge(s); this refreshes every 2 s.'));
          }
        }
        const p = await api('GET', '/api/deletions?pending=true&limit=200');
        err.replaceChildren();
        body.replaceChildren(...p.deletions.map((d) => h('tr', { dataset: { user: d.user_id, revision: d.revision, change: d.moved ? 'moved' : 'erased' } },
          h('td', {}, d.user_id), h('td', { class: 'num' }, d.revision),
          h('td', { class: 'change' }, d.moved ? 'site change' : 'erasure'),
          h('td', { class: 'left' }, leftText(d)), h('td', { class: d.moved ? 'remains' : 'remains muted' }, remainsText(d)),
          h('td', {}, fmtTime(d.deleted_at)),
          h('td', {}, d.pending.join(', ')), h('td', {}, d.purged.join(', ') || '—'))));
        if (!p.deletions.length) body.append(h('tr', {}, h('td', { colSpan: 8, class: 'muted' }, 'No erasure or site change is waiting for an edge.')));
      } catch (e) { err.replaceChildren(msg('error', e.message)); }
    }
    put(h('h1', {}, 'Erasure'), err,
      last ? h('section', { class: 'card' }, h('h2', {}, 'Your last deletion'), receipt) : null,
      h('h2', {}, 'Erasures and site changes still pending at some edge'),
      h('p', { class: 'muted' }, 'A site change makes the edges of the sites the user left that serve none of its remaining sites erase it; they send the same receipts as for an erasure.'),
      h('table', { id: 'pending' }, h('thead', {}, h('tr', {}, h('th', {}, 'User id'), h('th', { class: 'num' }, 'Revision'),
        h('th', {}, 'Change'), h('th', { title: 'the sites the user left' }, 'Left'), h('th', { title: 'where the user remains after a site change' }, 'Remains at'),
        h('th', {}, 'When'), h('th', {}, 'Waiting for'), h('th', {}, 'Purged at'))), body));
    every(2000, poll);
  }

  // ---- tokens ----------------------------------------------------------
  function tokensPage() {
    const sub = h('input', { type: 'text', id: 'tok-subject', required: true, placeholder: 'door-3' });
    const role = h('select', { id: 'tok-role' }, h('option', { value: 'verify' }, 'verify'), h('option', { value: 'admin' }, 'admin'));
    const ttl = h('input', { type: 'text', id: 'tok-ttl', value: '2160h' });
    const minted = h('div', { id: 'minted' });
    const rsub = h('input', { type: 'text', id: 'rev-subject', required: true });
    const reason = h('input', { type: 'text', id: 'rev-reason', class: 'wide' });
    const revoked = h('div');
    const body = h('tbody');
    async function list() {
      try {
        const r = await api('GET', '/api/revocations');
        body.replaceChildren(...r.revocations.map((x) => h('tr', {}, h('td', {}, x.subject), h('td', {}, fmtTime(x.revoked_at)), h('td', {}, x.reason || ''))));
        if (!r.revocations.length) body.append(h('tr', {}, h('td', { colSpan: 3, class: 'muted' }, 'No token is revoked.')));
      } catch (e) { revoked.replaceChildren(msg('error', e.message)); }
    }
    put(h('h1', {}, 'Tokens'),
      h('section', { class: 'card' }, h('h2', {}, 'Mint a token'),
        h('form', { class: 'row', onsubmit: async (ev) => {
          ev.preventDefault();
          minted.replaceChildren();
          try {
            const r = await api('POST', '/api/tokens', form({ subject: sub.value.trim(), role: role.value, ttl: ttl.value.trim() }));
            minted.append(msg('success', r.role + ' token for ' + r.subject + (r.expires_at ? ', valid until ' + fmtTime(r.expires_at) : ', never expires') + '. Copy it now: it is not shown again.'),
              h('div', { class: 'token', id: 'minted-token' }, r.token));
          } catch (e) { minted.append(msg('error', e.message)); }
        } }, h('label', {}, 'Subject', sub), h('label', {}, 'Role', role), h('label', {}, 'Valid for', ttl), h('button', { type: 'submit', class: 'primary', id: 'tok-mint' }, 'Mint')),
        minted),
      h('section', { class: 'card' }, h('h2', {}, 'Revoke by subject'),
        h('p', { class: 'muted' }, 'Every token of the subject issued up to now stops working at central and, within seconds, at every connected edge.'),
        h('form', { class: 'row', onsubmit: async (ev) => {
          ev.preventDefault();
          revoked.replaceChildren();
          try {
            const r = await api('POST', '/api/revocations', form({ subject: rsub.value.trim(), reason: reason.value }));
            revoked.append(msg('success', 'Revoked the tokens of ' + r.subject + ' issued up to ' + fmtTime(r.revoked_at) + '.'));
            list();
          } catch (e) { revoked.append(msg('error', e.message)); }
        } }, h('label', {}, 'Subject', rsub), h('label', {}, 'Reason', reason), h('button', { type: 'submit', class: 'danger', id: 'rev-submit' }, 'Revoke')),
        revoked),
      h('h2', {}, 'Revoked subjects'),
      h('table', { id: 'revocations' }, h('thead', {}, h('tr', {}, h('th', {}, 'Subject'), h('th', {}, 'Revoked (tokens issued up to)'), h('th', {}, 'Reason'))), body));
    list();
  }

  route();
})();

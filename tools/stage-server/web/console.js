// The moderator console: sign in, then see every stage — the hand queue (oldest first, with
// how long each hand has waited), who is on stage and who listens, stations and browsers —
// and run it: invite, move to the audience, mute, priority speaker, kick, end the stage.
// Everything peers named is shown as text, never as markup. Rows are kept by member and
// updated in place, so a keyboard user's focus stays on the button it was on.

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
// The link chart: the last two minutes of each member's jitter-buffer delay and jitter.
const CHART_POINTS = 120;
const SVG = 'http://www.w3.org/2000/svg';
const history = new Map();

let csrf = null;
let poller = null;
const stageViews = new Map();

function say(text) {
  $('status').textContent = text;
}

// One request to the console's interface: `body` as JSON, or `raw` (a file) as it is.
async function api(method, endpoint, body, raw) {
  const headers = { 'Content-Type': raw ? raw.type || 'application/octet-stream' : 'application/json' };
  if (csrf) {
    headers['X-CSRF-Token'] = csrf;
  }
  let response;
  try {
    response = await fetch(`/console/api/${endpoint}`, {
      method,
      headers,
      credentials: 'same-origin',
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
  } catch (e) {
    return { ok: false, status: 0, data: { error: `no answer (${e.message})` } };
  }
  let data = {};
  try {
    data = await response.json();
  } catch {
    data = {};
  }
  if (response.status === 401 && endpoint !== 'login') {
    signedOut('Your session ended: sign in again.');
  }
  return { ok: response.ok, status: response.status, data };
}

function signedIn(name, token) {
  csrf = token;
  $('sign-in').hidden = true;
  $('signed-in').hidden = false;
  $('who').textContent = `Signed in as ${name}.`;
  refresh().then(refreshClips);
  clearInterval(poller);
  poller = setInterval(refresh, POLL_MS);
}

function signedOut(message) {
  csrf = null;
  clearInterval(poller);
  poller = null;
  $('signed-in').hidden = true;
  $('sign-in').hidden = false;
  $('stages').replaceChildren();
  stageViews.clear();
  say(message);
}

$('sign-in').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('sign-in-button').disabled = true;
  const r = await api('POST', 'login', { name: $('user').value.trim(), password: $('password').value });
  $('sign-in-button').disabled = false;
  $('password').value = '';
  if (r.ok) {
    say('');
    signedIn(r.data.name, r.data.csrf);
  } else {
    say(r.data.error || `Sign-in failed (${r.status}).`);
  }
});

$('sign-out').addEventListener('click', async () => {
  await api('POST', 'logout', {});
  signedOut('Signed out.');
});

let stageIds = [];

async function refresh() {
  const r = await api('GET', 'overview');
  if (r.ok) {
    stageIds = (r.data.stages || []).map((s) => s.stage);
    render(r.data.stages || []);
  }
}

// The soundboard: the clips, each with a play button per stage, and the upload form.
async function refreshClips() {
  const r = await api('GET', 'clips');
  if (!r.ok) {
    return;
  }
  const list = $('clips');
  list.replaceChildren();
  for (const c of r.data.clips || []) {
    const li = el('li', 'clip');
    li.dataset.id = c.id;
    li.append(el('span', 'name', `${c.name} (${c.seconds} s)`));
    for (const stage of stageIds) {
      const play = button(stageIds.length > 1 ? `Play on ${stage}` : 'Play', () => act('play', { stage, clip: c.id }, `Play ${c.name}`));
      play.setAttribute('aria-label', `Play ${c.name} on stage ${stage}`);
      li.append(play);
    }
    const remove = button('Remove', () => {
      if (confirm(`Remove the clip ${c.name}?`)) {
        act('clips/remove', { id: c.id }, `Remove ${c.name}`).then(refreshClips);
      }
    });
    remove.className = 'danger';
    remove.setAttribute('aria-label', `Remove ${c.name}`);
    li.append(remove);
    list.append(li);
  }
  if (!list.children.length) {
    list.append(el('li', 'quiet', 'No clips yet.'));
  }
}

// A state-changing request, said in the status line when done or refused.
async function act(endpoint, body, what) {
  const r = await api('POST', endpoint, body);
  say(r.ok ? `${what}: done.` : `${what}: ${r.data.error || r.status}`);
  refresh();
  return r;
}

$('upload').addEventListener('submit', async (event) => {
  event.preventDefault();
  const file = $('clip-file').files[0];
  const name = $('clip-name').value.trim();
  if (!file || !name) {
    return;
  }
  $('upload-button').disabled = true;
  say(`Uploading ${name}…`);
  const r = await api('POST', `clips?name=${encodeURIComponent(name)}`, undefined, file);
  say(r.ok ? `${name}: uploaded (${r.data.seconds} s).` : `${name}: ${r.data.error || r.status}`);
  if (r.ok) {
    $('upload').reset();
  }
  $('upload-button').disabled = false;
  refreshClips();
});

function waited(ms) {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function displayName(m) {
  return m.name || m.id;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(label, onClick) {
  const b = el('button', '', label);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

// One stage's section, made once and updated at every poll.
function stageView(stage) {
  let v = stageViews.get(stage);
  if (v) return v;
  const section = el('section', 'stage');
  section.setAttribute('aria-labelledby', `stage-${stage}`);
  const h2 = el('h2', '', `Stage ${stage}`);
  h2.id = `stage-${stage}`;
  const end = button('End the stage', () => {
    if (confirm(`End stage ${stage}? People in browsers are disconnected; stations go back to their usual roles.`)) {
      act('action', { action: 'end_stage', stage }, `End stage ${stage}`);
    }
  });
  end.className = 'danger';
  const playing = el('p', 'playing');
  playing.setAttribute('aria-live', 'polite');
  const playingText = el('span');
  const stop = button('Stop the clip', () => act('stop', { stage }, `Stop the clip on ${stage}`));
  playing.append(playingText, stop);
  const handsTitle = el('h3', '', 'Raised hands');
  const hands = el('ol', 'hands');
  hands.setAttribute('aria-label', `Raised hands on ${stage}, oldest first`);
  const noHands = el('p', 'quiet', 'No hands raised.');
  const peopleTitle = el('h3', '', 'People');
  const legend = el('p', 'quiet legend', 'Link charts, last two minutes: blue is the jitter-buffer delay, orange the jitter.');
  const table = el('table', 'people');
  const head = el('tr');
  for (const h of ['Name', 'Kind', 'Role', 'State', 'Link', 'Actions']) {
    const th = el('th', '', h);
    th.scope = 'col';
    head.append(th);
  }
  const thead = el('thead');
  thead.append(head);
  const tbody = el('tbody');
  table.append(thead, tbody);
  section.append(h2, end, playing, handsTitle, noHands, hands, peopleTitle, legend, table);
  $('stages').append(section);
  v = { section, hands, noHands, tbody, rows: new Map(), handRows: new Map(), playing, playingText };
  stageViews.set(stage, v);
  return v;
}

function render(stages) {
  const seen = new Set();
  for (const s of stages) {
    seen.add(s.stage);
    const v = stageView(s.stage);
    v.playing.hidden = !s.clip_playing;
    if (s.clip_playing) {
      const [name, at] = s.clip_playing;
      v.playingText.textContent = `Soundboard: ${name} playing (${at.toFixed(1)} s) `;
    }
    renderHands(s, v);
    renderPeople(s, v);
  }
  for (const [stage, v] of stageViews) {
    if (!seen.has(stage)) {
      v.section.remove();
      stageViews.delete(stage);
    }
  }
}

function renderHands(s, v) {
  const byId = new Map(s.members.map((m) => [m.id, m]));
  const order = s.hands.filter((id) => byId.has(id));
  v.noHands.hidden = order.length > 0;
  for (const [id, li] of v.handRows) {
    if (!order.includes(id)) {
      li.remove();
      v.handRows.delete(id);
    }
  }
  for (const id of order) {
    const m = byId.get(id);
    let li = v.handRows.get(id);
    if (!li) {
      li = el('li');
      li.dataset.id = id;
      const name = el('span', 'name');
      const wait = el('span', 'wait');
      const invite = button('Invite', () => act('action', { action: 'invite', stage: s.stage, station: id }, `Invite ${displayName(m)}`));
      li.append(name, wait, invite);
      v.handRows.set(id, li);
    }
    const [name, wait, invite] = li.children;
    name.textContent = `${displayName(m)} (${m.kind})`;
    wait.textContent = m.invited ? 'invited, waiting for an answer' : `waiting ${waited(m.hand_waiting_ms || 0)}`;
    invite.hidden = m.invited;
    invite.setAttribute('aria-label', `Invite ${displayName(m)} to speak`);
    v.hands.append(li);
  }
}

function renderPeople(s, v) {
  const ids = new Set(s.members.map((m) => m.id));
  for (const [id, tr] of v.rows) {
    if (!ids.has(id)) {
      tr.remove();
      v.rows.delete(id);
      history.delete(id);
    }
  }
  const ordered = [...s.members].sort((a, b) => rank(a) - rank(b) || displayName(a).localeCompare(displayName(b)));
  for (const m of ordered) {
    let tr = v.rows.get(m.id);
    if (!tr) {
      tr = row(s.stage, m.id);
      v.rows.set(m.id, tr);
    }
    update(tr, s, m);
    v.tbody.append(tr);
  }
}

function rank(m) {
  return { moderator: 0, speaker: 1, audience: 2 }[m.role] ?? 3;
}

function row(stage, id) {
  const tr = el('tr');
  tr.dataset.id = id;
  for (const label of ['Name', 'Kind', 'Role', 'State', 'Link']) {
    const td = el('td');
    td.dataset.label = label;
    tr.append(td);
  }
  const link = tr.children[4];
  tr.linkText = el('span', 'link-text');
  tr.chart = chart();
  link.append(tr.linkText, tr.chart.svg);
  const actions = el('td', 'actions');
  const current = () => tr.member;
  const b = {
    invite: button('Invite', () => act('action', { action: 'invite', stage, station: id }, `Invite ${displayName(current())}`)),
    audience: button('Move to audience', () => act('action', { action: 'move_to_audience', stage, station: id }, `Move ${displayName(current())} to the audience`)),
    mute: button('Mute', () => act('action', { action: 'mute', stage, station: id, muted: !current().muted }, `${current().muted ? 'Unmute' : 'Mute'} ${displayName(current())}`)),
    priority: button('Make priority', () => act('action', { action: 'priority', stage, station: tr.priority ? null : id }, tr.priority ? 'Clear the priority speaker' : `Make ${displayName(current())} priority speaker`)),
    kick: button('Kick', () => {
      if (confirm(`Remove ${displayName(current())} from the stage?`)) {
        act('action', { action: 'kick', stage, station: id }, `Kick ${displayName(current())}`);
      }
    }),
  };
  b.kick.className = 'danger';
  actions.append(b.invite, b.audience, b.mute, b.priority, b.kick);
  tr.append(actions);
  tr.buttons = b;
  return tr;
}

function update(tr, s, m) {
  tr.member = m;
  tr.priority = s.priority === m.id;
  const [name, kind, role, state] = tr.children;
  name.textContent = displayName(m);
  kind.textContent = m.kind === 'browser' ? 'browser' : `station${m.firmware ? ` ${m.firmware.running}` : ''}`;
  role.textContent = m.role;
  const states = [];
  if (m.speaking) states.push('speaking');
  if (tr.priority) states.push('priority speaker');
  if (m.muted) states.push('muted');
  if (m.hand_waiting_ms !== null && m.hand_waiting_ms !== undefined) states.push('hand raised');
  if (m.invited) states.push('invited');
  if (!m.connected) states.push('reconnecting');
  if (m.firmware && m.firmware.update && m.firmware.update !== 'idle') {
    states.push(`update ${m.firmware.update}${m.firmware.percent != null ? ` ${m.firmware.percent} %` : ''}`);
  }
  if (m.link && m.link.led) states.push(`LED ${m.link.led}`);
  state.textContent = states.join(', ') || '—';
  tr.classList.toggle('speaking', Boolean(m.speaking));
  tr.linkText.textContent = linkSummary(m);
  plot(tr.chart, m);
  const who = displayName(m);
  const b = tr.buttons;
  b.invite.hidden = m.role !== 'audience' || m.invited;
  b.audience.hidden = m.role === 'moderator' || (m.role === 'audience' && !m.invited);
  b.audience.textContent = m.invited ? 'Withdraw invitation' : 'Move to audience';
  b.mute.hidden = m.role === 'audience' && !m.muted;
  b.mute.textContent = m.muted ? 'Unmute' : 'Mute';
  b.mute.setAttribute('aria-pressed', String(Boolean(m.muted)));
  b.priority.hidden = m.role === 'audience';
  b.priority.textContent = tr.priority ? 'Clear priority' : 'Make priority';
  b.kick.hidden = false;
  for (const [key, button_] of Object.entries(b)) {
    button_.setAttribute('aria-label', `${button_.textContent} — ${who}`);
    if (key === 'mute') button_.setAttribute('aria-pressed', String(Boolean(m.muted)));
  }
}

function linkSummary(m) {
  const l = m.link || {};
  const parts = [`loss ${m.reported_loss_percent} %`];
  if (l.jitter_ms != null) parts.push(`jitter ${l.jitter_ms} ms`);
  if (l.rtt_ms != null) parts.push(`round trip ${l.rtt_ms} ms`);
  if (l.jitter_buffer_ms != null) parts.push(`buffer ${l.jitter_buffer_ms} ms`);
  if (l.concealed_frames != null) parts.push(`concealed ${l.concealed_frames} of ${l.played_frames ?? '?'} frames`);
  if (l.reconnects != null) parts.push(`reconnects ${l.reconnects}`);
  return parts.join(' · ');
}

function chart() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${CHART_POINTS} 30`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const buffer = document.createElementNS(SVG, 'polyline');
  buffer.setAttribute('class', 'buffer');
  const jitter = document.createElementNS(SVG, 'polyline');
  jitter.setAttribute('class', 'jitter');
  svg.append(buffer, jitter);
  return { svg, buffer, jitter };
}

// Adds the member's figures to its history and redraws its chart (scaled to the largest
// value shown, at least 100 ms).
function plot(c, m) {
  let h = history.get(m.id);
  if (!h) {
    h = [];
    history.set(m.id, h);
  }
  const l = m.link || {};
  h.push({ buffer: l.jitter_buffer_ms ?? 0, jitter: l.jitter_ms ?? 0 });
  if (h.length > CHART_POINTS) h.shift();
  const top = Math.max(100, ...h.map((p) => Math.max(p.buffer, p.jitter)));
  const points = (key) => h.map((p, i) => `${i + CHART_POINTS - h.length},${(30 - (p[key] / top) * 28).toFixed(1)}`).join(' ');
  c.buffer.setAttribute('points', points('buffer'));
  c.jitter.setAttribute('points', points('jitter'));
  c.svg.setAttribute('aria-label', `Last ${h.length} s: jitter buffer up to ${Math.max(...h.map((p) => p.buffer))} ms, jitter up to ${Math.max(...h.map((p) => p.jitter))} ms (chart top ${top} ms)`);
}

(async () => {
  const r = await api('GET', 'session');
  if (r.ok) {
    signedIn(r.data.name, r.data.csrf);
  } else {
    $('sign-in').hidden = false;
    say('Sign in to run your stages.');
  }
})();

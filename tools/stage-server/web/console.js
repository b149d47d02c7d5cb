// The moderator console: sign in, then see every stage — the hand queue (oldest first, with
// how long each hand has waited), who is on stage and who listens, stations and browsers —
// and run it: invite, move to the audience, mute, priority speaker, kick, end the stage.
// Everything peers named is shown as text, never as markup. Rows are kept by member and
// updated in place, so a keyboard user's focus stays on the button it was on.

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;

let csrf = null;
let poller = null;
const stageViews = new Map();

function say(text) {
  $('status').textContent = text;
}

async function api(method, endpoint, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (csrf) {
    headers['X-CSRF-Token'] = csrf;
  }
  const response = await fetch(`/console/api/${endpoint}`, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
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
  refresh();
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

async function refresh() {
  const r = await api('GET', 'overview');
  if (r.ok) {
    render(r.data.stages || []);
  }
}

async function act(action, what) {
  const r = await api('POST', 'action', action);
  say(r.ok ? `${what}: done.` : `${what}: ${r.data.error || r.status}`);
  refresh();
}

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
      act({ action: 'end_stage', stage }, `End stage ${stage}`);
    }
  });
  end.className = 'danger';
  const handsTitle = el('h3', '', 'Raised hands');
  const hands = el('ol', 'hands');
  hands.setAttribute('aria-label', `Raised hands on ${stage}, oldest first`);
  const noHands = el('p', 'quiet', 'No hands raised.');
  const peopleTitle = el('h3', '', 'People');
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
  section.append(h2, end, handsTitle, noHands, hands, peopleTitle, table);
  $('stages').append(section);
  v = { section, hands, noHands, tbody, rows: new Map(), handRows: new Map() };
  stageViews.set(stage, v);
  return v;
}

function render(stages) {
  const seen = new Set();
  for (const s of stages) {
    seen.add(s.stage);
    const v = stageView(s.stage);
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
      const invite = button('Invite', () => act({ action: 'invite', stage: s.stage, station: id }, `Invite ${displayName(m)}`));
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
  const actions = el('td', 'actions');
  const current = () => tr.member;
  const b = {
    invite: button('Invite', () => act({ action: 'invite', stage, station: id }, `Invite ${displayName(current())}`)),
    audience: button('Move to audience', () => act({ action: 'move_to_audience', stage, station: id }, `Move ${displayName(current())} to the audience`)),
    mute: button('Mute', () => act({ action: 'mute', stage, station: id, muted: !current().muted }, `${current().muted ? 'Unmute' : 'Mute'} ${displayName(current())}`)),
    priority: button('Make priority', () => act({ action: 'priority', stage, station: tr.priority ? null : id }, tr.priority ? 'Clear the priority speaker' : `Make ${displayName(current())} priority speaker`)),
    kick: button('Kick', () => {
      if (confirm(`Remove ${displayName(current())} from the stage?`)) {
        act({ action: 'kick', stage, station: id }, `Kick ${displayName(current())}`);
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
  const [name, kind, role, state, link] = tr.children;
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
  state.textContent = states.join(', ') || '—';
  tr.classList.toggle('speaking', Boolean(m.speaking));
  link.textContent = `loss ${m.reported_loss_percent} %`;
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

(async () => {
  const r = await api('GET', 'session');
  if (r.ok) {
    signedIn(r.data.name, r.data.csrf);
  } else {
    $('sign-in').hidden = false;
    say('Sign in to run your stages.');
  }
})();

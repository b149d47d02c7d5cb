// The listener page: join a stage with its link, hear it over WebRTC, raise a hand, accept an
// invitation and speak. Everything a peer says is shown as text, never as markup.
//
// The link carries the stage and its token in the fragment (after '#'), which browsers never
// send to a server: https://HOST:PORT/listen#stage=ID&link=TOKEN

const params = new URLSearchParams(location.hash.slice(1));
const stage = params.get('stage') || '';
const link = params.get('link') || '';
const $ = (id) => document.getElementById(id);

// Speaker lines the page offers: the most speakers it hears at once.
const SPEAKER_LINES = 4;
// Everyone but the priority speaker plays at this gain while the priority speaker speaks
// (as on a station).
const DUCK_GAIN = 0.25;
// The least delay the browser's jitter buffer keeps for each speaker, ms.
const LISTEN_BUFFER_MS = 40;

let ws = null;
let pc = null;
let me = null;
// What takes this browser's place on the stage back after its connection drops (a network
// change): the session's secret and how long the server keeps it.
let session = null;
let droppedAt = null;
let retry = null;
let retries = 0;
let reconnects = 0;
let lastAck = 0;
let heartbeat = null;
let linkReports = null;
let lastReception = null;
let micSender = null;
let micTrack = null;
let leaving = false;
const members = new Map();
// Who speaks now, and the priority speaker's SSRC (the stage tells both as they change).
const speaking = new Set();
let prioritySsrc = null;
// The listener's own volume per speaker (0–1), and the lines speakers arrive on.
const volumes = new Map();
const lines = [];
let volumeTimer = null;
const rows = new Map();

$('stage-name').textContent = stage ? `Stage ${stage}` : 'This link names no stage';
if (params.get('processing') === 'off') {
  $('processing').checked = false;
}

function say(text) {
  $('status').textContent = text;
}

function send(op, d) {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ op, d }));
  }
}

$('join').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('name').value.trim();
  if (!name || !stage || !link) {
    say('This page needs a stage link and your name.');
    return;
  }
  join(name);
});

function join(name) {
  leaving = false;
  $('listen').disabled = true;
  say('Connecting…');
  connect(name);
}

// Closes that end the visit (the others are a dropped connection, taken back with
// `resume_web` while the server keeps the session).
const FINAL = {
  4004: 'This link is not valid (any more).',
  4006: 'Your place on the stage has expired. Join again.',
  4016: 'A moderator removed you from the stage.',
  4017: 'The stage has ended.',
};

function connect(name) {
  const socket = new WebSocket(`wss://${location.host}/`);
  ws = socket;
  socket.addEventListener('message', (event) => {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    handle(msg, name).catch((e) => say(`Something went wrong: ${e.message}`));
  });
  socket.addEventListener('close', (event) => {
    if (socket === ws) {
      dropped(event.code, name);
    }
  });
}

function dropped(code, name) {
  clearInterval(heartbeat);
  if (leaving) {
    say('You left the stage.');
    cleanUp();
    return;
  }
  if (FINAL[code] || !session) {
    say(FINAL[code] || `Disconnected (${code}).`);
    cleanUp();
    return;
  }
  droppedAt ??= Date.now();
  if (Date.now() - droppedAt > session.resume_window_ms) {
    say('The connection was lost for too long. Join again.');
    cleanUp();
    return;
  }
  // Soon, then less and less often (at most every 4 s), while the server keeps the place.
  const wait = Math.min(4000, 250 * 2 ** retries);
  retries += 1;
  say('Connection lost: reconnecting…');
  clearTimeout(retry);
  retry = setTimeout(() => connect(name), wait);
}

// A connection that stopped answering (a network change leaves it half open for minutes) is
// given up after two missed heartbeats, and taken back on a new one.
function watchHeartbeats(intervalMs, name) {
  lastAck = Date.now();
  clearInterval(heartbeat);
  heartbeat = setInterval(() => {
    if (Date.now() - lastAck > 2 * intervalMs + 1000) {
      const stale = ws;
      ws = null;
      stale.close();
      dropped(1006, name);
      return;
    }
    send('heartbeat', { nonce: Date.now() });
  }, intervalMs);
}

// A new offer with new ICE credentials on the same peer connection: the media path starts
// again from wherever this browser is now, with the same keys and lines.
async function restartIce() {
  if (!pc || pc.signalingState !== 'stable') {
    return;
  }
  const o = await pc.createOffer({ iceRestart: true });
  await pc.setLocalDescription(o);
  send('web_offer', { sdp: pc.localDescription.sdp });
}

async function handle(msg, name) {
  const d = msg.d || {};
  switch (msg.op) {
    case 'hello':
      if (session) {
        send('resume_web', { v: 1, stage, link, participant_id: me, session_id: session.session_id });
      } else {
        send('join_web', { v: 1, stage, link, name });
      }
      watchHeartbeats(d.heartbeat_interval_ms || 2000, name);
      break;
    case 'heartbeat_ack':
      lastAck = Date.now();
      break;
    case 'resumed':
      droppedAt = null;
      retries = 0;
      reconnects += 1;
      say('Back on the stage.');
      await restartIce();
      break;
    case 'web_ready':
      me = d.participant_id;
      session = { session_id: d.session_id, resume_window_ms: d.resume_window_ms || 30000 };
      $('join').hidden = true;
      $('controls').hidden = false;
      await offer();
      linkReports = setInterval(() => reportLink().catch(() => {}), 2000);
      break;
    case 'web_answer':
      await pc.setRemoteDescription({ type: 'answer', sdp: d.sdp });
      break;
    case 'stage':
      members.clear();
      for (const m of d.members || []) {
        members.set(m.station_id, m);
      }
      prioritySsrc = d.priority_ssrc ?? null;
      render();
      break;
    case 'priority':
      prioritySsrc = d.ssrc ?? null;
      render();
      break;
    case 'member_update':
      members.set(d.station_id, d);
      render();
      break;
    case 'member_left':
      members.delete(d.station_id);
      speaking.delete(d.station_id);
      render();
      break;
    case 'speaking':
      setSpeaking(d.station_id, d.speaking);
      break;
    case 'error':
      say(`The server refused: ${d.message}`);
      break;
    default:
      break;
  }
}

async function offer() {
  // No ICE servers: the stage server answers on its own addresses (ICE-lite).
  pc = new RTCPeerConnection();
  micSender = pc.addTransceiver('audio', { direction: 'sendonly' }).sender;
  for (let i = 0; i < SPEAKER_LINES; i++) {
    pc.addTransceiver('audio', { direction: 'recvonly' });
  }
  pc.addEventListener('track', (event) => {
    // A little more than Chromium's own least delay (about 20 ms on a quiet link), so a
    // delay spike on the way (Wi-Fi, a busy server) is waited for rather than concealed; on a
    // stage nobody hears the difference.
    if ('jitterBufferTarget' in event.receiver) {
      event.receiver.jitterBufferTarget = LISTEN_BUFFER_MS;
    }
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.srcObject = new MediaStream([event.track]);
    $('players').append(audio);
    lines.push({ receiver: event.receiver, audio });
  });
  volumeTimer = setInterval(applyVolumes, 200);
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'connected') {
      say('Listening.');
    } else if (pc.connectionState === 'failed') {
      // The media path broke while the signaling stayed up: start it again.
      say('The audio connection failed: trying again…');
      restartIce().catch(() => {});
    }
  });
  const o = await pc.createOffer();
  await pc.setLocalDescription(o);
  send('web_offer', { sdp: pc.localDescription.sdp });
}

// Every 2 s: what this browser hears, as a station reports it — the frames it expected and
// lost (the speakers' loss protection follows the worst listener), and its link and playout
// for the moderator's console. From the browser's own WebRTC statistics.
async function reportLink() {
  if (!pc || pc.connectionState !== 'connected') {
    return;
  }
  const stats = await pc.getStats();
  let received = 0;
  let lost = 0;
  let jitter = 0;
  let samples = 0;
  let concealed = 0;
  let bufferDelay = 0;
  let emitted = 0;
  let rtt = null;
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      received += r.packetsReceived || 0;
      lost += Math.max(0, r.packetsLost || 0);
      jitter = Math.max(jitter, r.jitter || 0);
      samples += r.totalSamplesReceived || 0;
      // Concealment of silence (a line with nobody on it) is not a fault.
      concealed += (r.concealedSamples || 0) - (r.silentConcealedSamples || 0);
      bufferDelay += r.jitterBufferDelay || 0;
      emitted += r.jitterBufferEmittedCount || 0;
    } else if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime !== undefined) {
      rtt = r.currentRoundTripTime;
    }
  });
  const now = { received, lost, bufferDelay, emitted };
  const last = lastReception;
  lastReception = now;
  // 20 ms Opus frames at 48 kHz.
  const link = {
    jitter_ms: Math.round(jitter * 1000),
    played_frames: Math.floor(samples / 960),
    concealed_frames: Math.floor(concealed / 960),
    reconnects,
  };
  // Chromium says 0 for a round trip below its resolution (loopback): not a figure to show.
  if (rtt !== null && rtt > 0) {
    link.rtt_ms = Math.ceil(rtt * 1000);
  }
  if (last && emitted > last.emitted) {
    link.jitter_buffer_ms = Math.round(((bufferDelay - last.bufferDelay) / (emitted - last.emitted)) * 1000);
  }
  send('link_stats', link);
  if (last) {
    const newlyLost = Math.max(0, lost - last.lost);
    const expected = Math.max(0, received - last.received) + newlyLost;
    if (expected > 0) {
      send('reception_report', { expected, lost: newlyLost });
    }
  }
}

function label(id, m) {
  const name = m.name || id;
  const who = id === me ? `${name} (you)` : name;
  return m.name ? who : `${who} — station`;
}

// One list item per member, kept and updated in place (a volume slider being dragged is
// never replaced).
function row(id) {
  let r = rows.get(id);
  if (r) {
    return r;
  }
  const li = document.createElement('li');
  li.dataset.id = id;
  const text = document.createElement('span');
  const tag = document.createElement('span');
  tag.className = 'tag';
  const volume = document.createElement('input');
  volume.type = 'range';
  volume.min = '0';
  volume.max = '100';
  volume.value = '100';
  volume.className = 'volume';
  volume.addEventListener('input', () => {
    volumes.set(id, Number(volume.value) / 100);
    applyVolumes();
  });
  li.append(text, tag, volume);
  r = { li, text, tag, volume };
  rows.set(id, r);
  return r;
}

function render() {
  const speakers = $('speakers');
  const audience = $('audience');
  for (const [id, r] of rows) {
    if (!members.has(id)) {
      r.li.remove();
      rows.delete(id);
    }
  }
  for (const [id, m] of members) {
    const r = row(id);
    r.text.textContent = label(id, m);
    const tags = [];
    if (speaking.has(id)) tags.push('speaking');
    if (prioritySsrc !== null && m.ssrc === prioritySsrc) tags.push('priority speaker');
    if (m.role === 'moderator') tags.push('moderator');
    if (m.hand_raised) tags.push('hand raised');
    if (m.server_muted) tags.push('muted');
    if (!m.connected) tags.push('reconnecting');
    r.tag.textContent = tags.join(', ');
    r.tag.hidden = tags.length === 0;
    r.volume.hidden = m.role === 'audience' || id === me;
    r.volume.setAttribute('aria-label', `Volume of ${m.name || id}`);
    r.li.classList.toggle('speaking', speaking.has(id));
    const list = m.role === 'audience' ? audience : speakers;
    if (r.li.parentElement !== list) {
      list.append(r.li);
    }
  }
  const mine = members.get(me);
  if (!mine) {
    return;
  }
  const audienceMember = mine.role === 'audience';
  $('hand').hidden = !audienceMember;
  $('hand').setAttribute('aria-pressed', String(Boolean(mine.hand_raised)));
  $('hand').textContent = mine.hand_raised ? 'Lower hand' : 'Raise hand';
  const invited = audienceMember && mine.invited;
  if (invited && $('invite').hidden) {
    // Said in the status line (a live region) and focused, so a screen reader and a
    // keyboard user both meet the invitation at once.
    say('A moderator invites you to speak.');
    $('invite').hidden = false;
    $('accept').focus();
  }
  $('invite').hidden = !invited;
  $('mute').hidden = audienceMember;
  $('step-down').hidden = mine.role !== 'speaker';
  if (audienceMember && micTrack) {
    micTrack.stop();
    micTrack = null;
    micSender.replaceTrack(null);
  }
}

// Which speaker each line carries now (the server names it as the packets' contributing
// source), at the listener's volume for that speaker, ducked while the priority speaker speaks.
function applyVolumes() {
  const bySsrc = new Map([...members].map(([id, m]) => [m.ssrc, id]));
  const priorityId = prioritySsrc === null ? undefined : bySsrc.get(prioritySsrc);
  const duck = priorityId !== undefined && speaking.has(priorityId);
  for (const line of lines) {
    let latest = null;
    for (const c of line.receiver.getContributingSources()) {
      if (!latest || c.timestamp > latest.timestamp) {
        latest = c;
      }
    }
    const id = latest ? bySsrc.get(latest.source) : undefined;
    let volume = id === undefined ? 1 : (volumes.get(id) ?? 1);
    if (duck && id !== priorityId) {
      volume *= DUCK_GAIN;
    }
    line.audio.volume = volume;
    line.audio.dataset.speaker = id ?? '';
  }
}

function setSpeaking(id, now) {
  if (now) {
    speaking.add(id);
  } else {
    speaking.delete(id);
  }
  render();
}

$('hand').addEventListener('click', () => {
  const mine = members.get(me);
  send('raise_hand', { raised: !(mine && mine.hand_raised) });
});

$('accept').addEventListener('click', async () => {
  const processing = $('processing').checked;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        echoCancellation: processing,
        noiseSuppression: processing,
        autoGainControl: processing,
      },
    });
    micTrack = stream.getAudioTracks()[0];
    await micSender.replaceTrack(micTrack);
    send('invite_response', { accept: true });
    say('You are on stage: your microphone is on.');
  } catch (e) {
    say(`No microphone: ${e.message}`);
    send('invite_response', { accept: false });
  }
});

$('decline').addEventListener('click', () => send('invite_response', { accept: false }));

$('mute').addEventListener('click', () => {
  if (!micTrack) {
    return;
  }
  micTrack.enabled = !micTrack.enabled;
  $('mute').setAttribute('aria-pressed', String(!micTrack.enabled));
  $('mute').textContent = micTrack.enabled ? 'Mute my microphone' : 'Unmute my microphone';
});

$('step-down').addEventListener('click', () => send('step_down', {}));

$('leave').addEventListener('click', () => {
  leaving = true;
  if (ws) {
    ws.close(1000);
  }
});

function cleanUp() {
  session = null;
  clearTimeout(retry);
  clearInterval(heartbeat);
  clearInterval(linkReports);
  clearInterval(volumeTimer);
  if (micTrack) {
    micTrack.stop();
    micTrack = null;
  }
  if (pc) {
    pc.close();
    pc = null;
  }
  // The page can join again without being reloaded.
  $('players').replaceChildren();
  lines.length = 0;
  members.clear();
  speaking.clear();
  render();
  me = null;
  droppedAt = null;
  retries = 0;
  $('controls').hidden = true;
  $('invite').hidden = true;
  $('join').hidden = false;
  $('listen').disabled = false;
}

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

let ws = null;
let pc = null;
let me = null;
let heartbeat = null;
let micSender = null;
let micTrack = null;
let leaving = false;
const members = new Map();
// Who speaks now, and the priority speaker's SSRC (the stage tells both as they change).
const speaking = new Set();
let prioritySsrc = null;

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
  $('listen').disabled = true;
  say('Connecting…');
  ws = new WebSocket(`wss://${location.host}/`);
  ws.addEventListener('message', (event) => {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    handle(msg, name).catch((e) => say(`Something went wrong: ${e.message}`));
  });
  ws.addEventListener('close', (event) => {
    say(leaving ? 'You left the stage.' : `Disconnected (${event.code}).`);
    cleanUp();
  });
}

async function handle(msg, name) {
  const d = msg.d || {};
  switch (msg.op) {
    case 'hello':
      send('join_web', { v: 1, stage, link, name });
      heartbeat = setInterval(() => send('heartbeat', { nonce: Date.now() }), d.heartbeat_interval_ms || 2000);
      break;
    case 'web_ready':
      me = d.participant_id;
      $('join').hidden = true;
      $('controls').hidden = false;
      await offer();
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
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.srcObject = new MediaStream([event.track]);
    $('players').append(audio);
  });
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'connected') {
      say('Listening.');
    } else if (pc.connectionState === 'failed') {
      say('The audio connection failed.');
    }
  });
  const o = await pc.createOffer();
  await pc.setLocalDescription(o);
  send('web_offer', { sdp: pc.localDescription.sdp });
}

function label(id, m) {
  const name = m.name || id;
  const who = id === me ? `${name} (you)` : name;
  return m.name ? who : `${who} — station`;
}

function render() {
  const speakers = $('speakers');
  const audience = $('audience');
  speakers.replaceChildren();
  audience.replaceChildren();
  for (const [id, m] of members) {
    const li = document.createElement('li');
    li.dataset.id = id;
    li.textContent = label(id, m);
    const tags = [];
    if (speaking.has(id)) tags.push('speaking');
    if (prioritySsrc !== null && m.ssrc === prioritySsrc) tags.push('priority speaker');
    if (m.role === 'moderator') tags.push('moderator');
    if (m.hand_raised) tags.push('hand raised');
    if (m.server_muted) tags.push('muted');
    if (!m.connected) tags.push('reconnecting');
    if (tags.length) {
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = tags.join(', ');
      li.append(tag);
    }
    li.classList.toggle('speaking', speaking.has(id));
    (m.role === 'audience' ? audience : speakers).append(li);
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
  clearInterval(heartbeat);
  if (micTrack) {
    micTrack.stop();
  }
  if (pc) {
    pc.close();
  }
  $('controls').hidden = true;
  $('invite').hidden = true;
}

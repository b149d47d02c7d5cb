// A person on a stage from a browser, for `cargo xtask test`: Debian's Chromium opens the
// stage's listener link and joins; then it does what the test says, one command per line on
// standard input, answering each with one JSON line on standard output:
//
//   record        start recording what the page plays (WebAudio, from its audio elements)
//   stop          stop; write the recording to OUT.wav (48 kHz, 16-bit) and say what the
//                 browser's WebRTC statistics count as received
//   received      what the browser's WebRTC statistics count as received so far
//   mic PATH      write what the page's microphone track gave so far (as WebAudio saw it) to
//                 PATH, and say when it started (Unix ms)
//   network-change  the page's network goes away and comes back elsewhere: its signaling
//                 connection stops carrying anything (as a half-open connection after a
//                 phone leaves the Wi-Fi); wait until the page is back on the stage and its
//                 media path runs from a new local port; say both ports
//   raise         raise the hand
//   accept        wait for the invitation, accept it (the microphone: Chromium's fake device
//                 playing MIC.wav), and say when the microphone went on
//   volumes       which speaker each of the page's lines carries now, at what volume
//   set-volume WHO PERCENT   set the page's volume slider for speaker WHO
//   leave         leave the stage, take the screenshots, quit
//
// and as the stage's moderator, in a second browser context on the server's console
// (https://HOST:PORT/console; the account from MODERATOR_NAME and MODERATOR_PASSWORD):
//
//   console               sign in
//   console-invite WHO    invite WHO from the hand queue (WHO: the text its entry shows);
//                         say how long the console showed it waiting
//   console-do ACTION | WHO  press ACTION (a button's label: Mute, Make priority, …) on WHO's row
//   console-upload NAME | PATH   upload the file PATH to the soundboard as NAME
//   console-play NAME     play the soundboard clip NAME into the stage
//   console-shots         screenshots of the console at desktop and phone widths
//
// node listen.mjs URL OUT.wav MIC.wav SCREENSHOT_PREFIX

import { writeFileSync } from 'node:fs';
import { answer, drive, join, launch, received, watchPeers } from './chromium.mjs';

const [url, wavPath, micPath, shotPrefix] = process.argv.slice(2);

// Sound allowed to start without a click, and a fake microphone that plays a file.
const browser = await launch([
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${micPath}`,
]);

// Records the page's microphone track as WebAudio sees it (the test's "mouth" for the time
// from the browser to a station's loudspeaker): the page's own getUserMedia, wrapped, feeds
// the track to WebAudio as well, timed by the wall clock at its first block.
async function watchMicrophone(context) {
  await context.addInitScript(() => {
    const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    window.stageboxMic = { fromUnixMs: null, chunks: [] };
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      const stream = await original(constraints);
      const ctx = new AudioContext({ sampleRate: 48000 });
      const sink = ctx.createScriptProcessor(1024, 1, 1);
      sink.onaudioprocess = (e) => {
        const data = e.inputBuffer.getChannelData(0);
        if (window.stageboxMic.fromUnixMs === null) {
          window.stageboxMic.fromUnixMs = Date.now() - data.length / 48;
        }
        window.stageboxMic.chunks.push(new Float32Array(data));
      };
      ctx.createMediaStreamSource(stream).connect(sink);
      sink.connect(ctx.destination);
      window.stageboxMicWatch = ctx;
      return stream;
    };
  });
}

// Keeps the page's signaling connections within reach, each able to go silent both ways
// (`stageboxCut`): what it sends is dropped and what arrives is never seen by the page, as when
// the network under a connection is gone but nothing closed it.
async function watchSockets(context) {
  await context.addInitScript(() => {
    const Original = window.WebSocket;
    window.stageboxSockets = [];
    window.WebSocket = class extends Original {
      constructor(...args) {
        super(...args);
        this.stageboxCut = false;
        // First listener of all: when cut, no later listener (the page's) hears a message.
        this.addEventListener('message', (e) => {
          if (this.stageboxCut) {
            e.stopImmediatePropagation();
          }
        });
        window.stageboxSockets.push(this);
      }

      send(data) {
        if (!this.stageboxCut) {
          super.send(data);
        }
      }
    };
  });
}

// The local port of the page's media path now (its selected ICE candidate pair), or null.
async function mediaPort(page) {
  return page.evaluate(async () => {
    for (const pc of window.stageboxPeers) {
      const stats = await pc.getStats();
      let pairId = null;
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) {
          pairId = r.selectedCandidatePairId;
        }
      });
      const pair = pairId && stats.get(pairId);
      const local = pair && stats.get(pair.localCandidateId);
      if (local) {
        return local.port;
      }
    }
    return null;
  });
}

// 16-bit PCM of float chunks, as base64 (what a page hands back).
function pcmBase64InPage(chunksName) {
  return `(() => {
    const chunks = ${chunksName};
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const out = new Int16Array(total);
    let i = 0;
    for (const c of chunks) {
      for (const v of c) {
        out[i++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
      }
    }
    const bytes = new Uint8Array(out.buffer);
    let text = '';
    for (let j = 0; j < bytes.length; j += 0x8000) {
      text += String.fromCharCode(...bytes.subarray(j, j + 0x8000));
    }
    return btoa(text);
  })()`;
}

// A 48 kHz mono 16-bit WAV of base64 PCM; the number of samples.
function writeWav(path, base64) {
  const data = Buffer.from(base64, 'base64');
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(48000, 24);
  header.writeUInt32LE(96000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([header, data]));
  return data.length / 2;
}

async function record(page) {
  return page.evaluate(async () => {
    const ctx = new AudioContext({ sampleRate: 48000 });
    await ctx.resume();
    const sink = ctx.createScriptProcessor(4096, 1, 1);
    // A line's track is muted until its first packet; a source made from it before then may
    // stay silent, so each joins the recording when its audio starts (the recording's clock
    // runs from now either way).
    for (const audio of document.querySelectorAll('#players audio')) {
      const track = audio.srcObject.getAudioTracks()[0];
      const join = () => ctx.createMediaStreamSource(new MediaStream([track])).connect(sink);
      if (track.muted) {
        track.addEventListener('unmute', join, { once: true });
      } else {
        join();
      }
    }
    const chunks = [];
    sink.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    sink.connect(ctx.destination);
    window.stageboxRecording = { ctx, chunks };
    return Date.now();
  });
}

async function stopRecording(page) {
  await page.evaluate(() => window.stageboxRecording.ctx.close());
  return writeWav(wavPath, await page.evaluate(pcmBase64InPage('window.stageboxRecording.chunks')));
}

let page = null;
let moderator = null;

async function start() {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 390, height: 844 },
  });
  await watchPeers(context);
  await watchSockets(context);
  await watchMicrophone(context);
  page = await context.newPage();
  page.on('console', (m) => console.error(`page: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await join(page, url, 'Listener in Chromium');
  return { listening: true };
}

async function handle(verb, who, command) {
  if (verb === 'console') {
    const mctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    moderator = await mctx.newPage();
    moderator.on('console', (m) => console.error(`console page: ${m.text()}`));
    moderator.on('pageerror', (e) => console.error(`console page error: ${e.message}`));
    moderator.on('dialog', (d) => d.accept());
    await moderator.goto(new URL('/console', url).href);
    await moderator.getByLabel('Name', { exact: true }).fill(process.env.MODERATOR_NAME || '');
    await moderator.getByLabel('Password', { exact: true }).fill(process.env.MODERATOR_PASSWORD || '');
    await moderator.getByRole('button', { name: 'Sign in' }).click();
    await moderator.getByText('Signed in as').waitFor({ timeout: 10_000 });
    answer({ signed_in: true });
  } else if (verb === 'console-invite') {
    const entry = moderator.locator('ol.hands li', { hasText: who });
    await entry.waitFor({ timeout: 10_000 });
    const waited = await entry.locator('.wait').textContent();
    await entry.getByRole('button', { name: /^Invite/ }).click();
    await entry.getByText('invited, waiting for an answer').waitFor({ timeout: 10_000 });
    answer({ invited: who, waited });
  } else if (verb === 'console-do') {
    const [action, ...name] = who.split(' | ');
    const row = moderator.locator('table.people tr', { hasText: name.join(' | ') });
    await moderator.evaluate(() => { document.getElementById('status').textContent = ''; });
    await row.getByRole('button', { name: new RegExp(`^${action}`) }).click();
    await moderator.getByText(/: done\.$/).waitFor({ timeout: 10_000 });
    answer({ done: action, who: name.join(' | ') });
  } else if (verb === 'console-upload') {
    const [name, path] = who.split(' | ');
    await moderator.getByLabel('Clip name').fill(name);
    await moderator.getByLabel('File', { exact: true }).setInputFiles(path);
    await moderator.getByRole('button', { name: 'Upload' }).click();
    await moderator.getByText(`${name}: uploaded`).waitFor({ timeout: 20_000 });
    await moderator.locator('#clips li', { hasText: name }).waitFor({ timeout: 10_000 });
    answer({ uploaded: name });
  } else if (verb === 'console-play') {
    await moderator.evaluate(() => { document.getElementById('status').textContent = ''; });
    await moderator.locator('#clips li', { hasText: who }).getByRole('button', { name: /^Play/ }).first().click();
    await moderator.getByText(`Play ${who}: done.`).waitFor({ timeout: 10_000 });
    answer({ playing: who });
  } else if (verb === 'console-shots') {
    await moderator.screenshot({ path: `${shotPrefix.replace(/listener$/, 'console')}-desktop.png`, fullPage: true });
    await moderator.setViewportSize({ width: 390, height: 844 });
    await moderator.screenshot({ path: `${shotPrefix.replace(/listener$/, 'console')}-phone.png`, fullPage: true });
    await moderator.setViewportSize({ width: 1280, height: 800 });
    answer({ screenshots: true });
  } else if (verb === 'volumes') {
    answer(await page.evaluate(() => [...document.querySelectorAll('#players audio')].map((a) => ({ speaker: a.dataset.speaker || null, volume: a.volume }))));
  } else if (verb === 'set-volume') {
    const words = who.split(' ');
    const percent = words.pop();
    await page.getByLabel(`Volume of ${words.join(' ')}`).fill(percent);
    answer({ volume: Number(percent) / 100 });
  } else if (verb === 'mic') {
    const samples = writeWav(who, await page.evaluate(pcmBase64InPage('window.stageboxMic.chunks')));
    answer({ from_unix_ms: await page.evaluate(() => window.stageboxMic.fromUnixMs), samples });
  } else if (command === 'record') {
    answer({ recording_from_unix_ms: await record(page) });
  } else if (command === 'received') {
    answer(await received(page));
  } else if (command === 'stop') {
    const stats = await received(page);
    answer({ samples: await stopRecording(page), received: stats });
  } else if (command === 'network-change') {
    const before = await mediaPort(page);
    const from = Date.now();
    await page.evaluate(() => { window.stageboxSockets.at(-1).stageboxCut = true; });
    await page.getByText('Back on the stage.').waitFor({ timeout: 30_000 });
    const back = Date.now() - from;
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      await page.waitForTimeout(100);
      after = await mediaPort(page);
    }
    answer({ port_before: before, port_after: after, back_on_stage_ms: back, new_path_ms: Date.now() - from });
  } else if (command === 'raise') {
    await page.getByRole('button', { name: 'Raise hand' }).click();
    await page.getByRole('button', { name: 'Lower hand' }).waitFor();
    answer({ hand: true });
  } else if (command === 'accept') {
    const accept = page.getByRole('button', { name: 'Accept and turn on my microphone' });
    await accept.waitFor({ timeout: 20_000 });
    await page.screenshot({ path: `${shotPrefix}-invited-phone.png`, fullPage: true });
    await accept.click();
    await page.getByText('You are on stage').waitFor({ timeout: 20_000 });
    answer({ microphone_on_unix_ms: Date.now() });
  } else if (command === 'leave') {
    await page.screenshot({ path: `${shotPrefix}-phone.png`, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.screenshot({ path: `${shotPrefix}-desktop.png`, fullPage: true });
    await page.getByRole('button', { name: 'Leave' }).click();
    await page.getByText('You left the stage.').waitFor();
    answer({ left: true });
    return 'stop';
  } else {
    answer({ error: `unknown command ${command}` });
  }
  return 'go on';
}

await drive('listen.mjs', browser, start, handle);

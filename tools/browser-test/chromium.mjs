// What the browser tests share: Debian's Chromium with the flags this machine needs, and a
// person joining a stage from the listener page.

import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

// A driver's answer: one JSON line on standard output.
export const answer = (value) => console.log(JSON.stringify(value));

// Runs a driver: `start()` once (its result is the first answer), then
// `handle(verb, rest, command)` for each line of standard input until it returns 'stop'. Closes
// the browser and exits 0; 2 with the error if one is thrown; 3 after 300 s.
export async function drive(name, browser, start, handle) {
  const quit = async (code, why) => {
    if (why) {
      console.error(why);
    }
    await browser.close();
    process.exit(code);
  };
  const timer = setTimeout(() => quit(3, `${name}: gave up after 300 s`), 300_000);
  try {
    answer(await start());
    for await (const line of createInterface({ input: process.stdin })) {
      const command = line.trim();
      const [verb, ...rest] = command.split(' ');
      if ((await handle(verb, rest.join(' '), command)) === 'stop') {
        break;
      }
    }
    clearTimeout(timer);
    await quit(0);
  } catch (e) {
    await quit(2, `${name}: ${e.stack || e}`);
  }
}

// Flags for a machine with no network beyond loopback (Chromium's background fetches would be
// refused), as root in a test, with sound allowed to start without a click; `extra` adds more
// (a fake microphone).
export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      ...extra,
    ],
  });
}

// Keeps the page's peer connections within reach for their statistics (what the browser
// received); the page itself exposes nothing.
export async function watchPeers(context) {
  await context.addInitScript(() => {
    const Original = window.RTCPeerConnection;
    window.stageboxPeers = [];
    window.RTCPeerConnection = function (...args) {
      const pc = new Original(...args);
      window.stageboxPeers.push(pc);
      return pc;
    };
    window.RTCPeerConnection.prototype = Original.prototype;
  });
}

// Opens the listener link on `page` and joins as `name`; resolves once the page listens.
export async function join(page, url, name) {
  await page.goto(url);
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Listen' }).click();
  await page.getByText('Listening.').waitFor({ timeout: 30_000 });
  await page.waitForFunction(() => document.querySelectorAll('#players audio').length > 0);
}

// What the page's peer connections received, over all its lines (Chromium's `inbound-rtp`
// counts): packets, loss, concealment, the jitter buffer's delay, audio energy.
export async function received(page) {
  return page.evaluate(async () => {
    const out = {
      packets_received: 0,
      packets_lost: 0,
      concealed_samples: 0,
      silent_concealed_samples: 0,
      samples_received: 0,
      jitter_buffer_delay_ms: 0,
      inserted_for_deceleration: 0,
      removed_for_acceleration: 0,
      total_audio_energy: 0,
    };
    let emitted = 0;
    for (const pc of window.stageboxPeers) {
      const stats = await pc.getStats();
      stats.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') {
          out.packets_received += r.packetsReceived || 0;
          out.packets_lost += r.packetsLost || 0;
          out.concealed_samples += r.concealedSamples || 0;
          out.silent_concealed_samples += r.silentConcealedSamples || 0;
          out.samples_received += r.totalSamplesReceived || 0;
          out.jitter_buffer_delay_ms += (r.jitterBufferDelay || 0) * 1000;
          emitted += r.jitterBufferEmittedCount || 0;
          out.inserted_for_deceleration += r.insertedSamplesForDeceleration || 0;
          out.removed_for_acceleration += r.removedSamplesForAcceleration || 0;
          out.total_audio_energy += r.totalAudioEnergy || 0;
        }
      });
    }
    out.jitter_buffer_delay_ms = emitted ? out.jitter_buffer_delay_ms / emitted : 0;
    return out;
  });
}


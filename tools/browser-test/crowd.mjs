// A crowd of listeners for `cargo xtask test`: N people in N browser contexts of one headless
// Chromium open the stage's listener link and listen. Then, one command per line on standard
// input, one JSON line answered on standard output:
//
//   heard   what each listener's page received so far (packets, lost, audio energy)
//   quit    close the browser
//
// node crowd.mjs URL N

import { answer, drive, join, launch, received, watchPeers } from './chromium.mjs';

const [url, count] = process.argv.slice(2);
const browser = await launch();
const pages = [];

async function start() {
  for (let i = 0; i < Number(count); i++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    await watchPeers(context);
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error(`listener ${i}: ${e.message}`));
    pages.push(page);
  }
  // Joined a few at a time: twenty handshakes at once on two cores would only queue.
  for (let i = 0; i < pages.length; i += 5) {
    await Promise.all(pages.slice(i, i + 5).map((p, j) => join(p, url, `Listener ${i + j + 1}`)));
  }
  return { listening: pages.length };
}

async function handle(verb, _rest, command) {
  if (command === 'heard') {
    answer(await Promise.all(pages.map(received)));
  } else if (command === 'quit') {
    return 'stop';
  } else {
    answer({ error: `unknown command ${command}` });
  }
  return 'go on';
}

await drive('crowd.mjs', browser, start, handle);

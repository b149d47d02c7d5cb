// A crowd of listeners for `cargo xtask test`: N people in N browser contexts of one headless
// Chromium open the stage's listener link and listen. Then, one command per line on standard
// input, one JSON line answered on standard output:
//
//   heard   what each listener's page received so far (packets, lost, audio energy)
//   quit    close the browser
//
// node crowd.mjs URL N

import { createInterface } from 'node:readline';
import { join, launch, received, watchPeers } from './chromium.mjs';

const [url, count] = process.argv.slice(2);
const browser = await launch();
const answer = (value) => console.log(JSON.stringify(value));
const quit = async (code, why) => {
  if (why) {
    console.error(why);
  }
  await browser.close();
  process.exit(code);
};
const timer = setTimeout(() => quit(3, 'crowd.mjs: gave up after 300 s'), 300_000);

try {
  const pages = [];
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
  answer({ listening: pages.length });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const command = line.trim();
    if (command === 'heard') {
      answer(await Promise.all(pages.map(received)));
    } else if (command === 'quit') {
      break;
    } else {
      answer({ error: `unknown command ${command}` });
    }
  }
  clearTimeout(timer);
  await quit(0);
} catch (e) {
  await quit(2, `crowd.mjs: ${e.stack || e}`);
}

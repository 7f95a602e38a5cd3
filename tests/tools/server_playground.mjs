// Opens lowbit serve's playground page (GET /) in headless Chromium, driven over the Chrome
// DevTools protocol on a pipe (--remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4, so
// no websocket library is needed), types a prompt, presses Generate, and checks that streamed
// text appears: the output ends equal to the server's own greedy completion and was written
// chunk by chunk. Usage: node server_playground.mjs PORT SCRATCH_DIR
import { spawn } from 'node:child_process';

const [port, scratch] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
const PROMPT = 'Once upon a time';
const N = 40;
let fails = 0;
const check = (name, cond, detail) => {
  if (cond) console.log(`ok: ${name}`);
  else { fails++; console.log(`FAIL: ${name}${detail !== undefined ? ': ' + JSON.stringify(detail) : ''}`); }
};

// The reference: the same request, whole, from the server itself.
const ref = await (await fetch(`${base}/v1/completions`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ prompt: PROMPT, max_tokens: N, temperature: 0 }),
})).json();
const expected = ref.choices[0].text;

const chrome = spawn('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--no-default-browser-check', '--disable-extensions', '--remote-debugging-pipe',
  `--user-data-dir=${scratch}/chromium-profile`, 'about:blank'],
  { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
let chromeErr = '';
chrome.stderr.on('data', (d) => { chromeErr += d; });
const toChrome = chrome.stdio[3], fromChrome = chrome.stdio[4];

let nextId = 1;
const waiting = new Map();
let inbuf = Buffer.alloc(0);
fromChrome.on('data', (d) => {
  inbuf = Buffer.concat([inbuf, d]);
  let z;
  while ((z = inbuf.indexOf(0)) >= 0) {
    const msg = JSON.parse(inbuf.subarray(0, z).toString('utf8'));
    inbuf = inbuf.subarray(z + 1);
    if (msg.id && waiting.has(msg.id)) {
      const { resolve, reject } = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (msg.error) reject(new Error(JSON.stringify(msg.error))); else resolve(msg.result);
    }
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  const msg = { id, method, params };
  if (sessionId) msg.sessionId = sessionId;
  toChrome.write(JSON.stringify(msg) + '\0');
  return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const deadline = setTimeout(() => {
  console.log('FAIL: playground test timed out; chromium said: ' + chromeErr.slice(-2000));
  chrome.kill('SIGKILL');
  process.exit(1);
}, 60000);

try {
  const { targetId } = await send('Target.createTarget', { url: `${base}/` });
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  const evaluate = async (expression) => {
    const r = await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
    if (r.exceptionDetails) throw new Error(JSON.stringify(r.exceptionDetails));
    return r.result.value;
  };
  // Wait for the page and its model list.
  let models = 0;
  for (let i = 0; i < 200 && !models; i++) {
    models = await evaluate("document.readyState === 'complete' && document.getElementById('model') ? document.getElementById('model').options.length : 0").catch(() => 0);
    if (!models) await sleep(50);
  }
  check('page loaded with the model list', models >= 1, models);
  check('page title', (await evaluate('document.title')) === 'lowbit playground');
  // Count writes to the output: a stream arrives as many chunks.
  await evaluate(`window.__writes = 0;
    new MutationObserver((m) => { window.__writes += m.length; })
      .observe(document.getElementById('output'), {childList: true, characterData: true, subtree: true});
    document.getElementById('prompt').value = ${JSON.stringify(PROMPT)};
    document.getElementById('max_tokens').value = '${N}';
    document.getElementById('temperature').value = '0'; true`);
  // Press the button as a user would: a real mouse click at its centre.
  const box = await evaluate(`(() => { const r = document.getElementById('go').getBoundingClientRect();
    return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()`);
  for (const type of ['mousePressed', 'mouseReleased'])
    await send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 }, sessionId);
  let status = '';
  for (let i = 0; i < 400; i++) {
    status = await evaluate("document.getElementById('status').textContent");
    if (status.startsWith('done') || status.startsWith('error')) break;
    await sleep(25);
  }
  const output = await evaluate("document.getElementById('output').textContent");
  const writes = await evaluate('window.__writes');
  check('generation finished', status === 'done (length)', status);
  check('streamed text appears and equals the greedy completion', output === expected, { output, expected });
  check('the text arrived in many chunks', writes >= 10, writes);
  await send('Browser.close').catch(() => {});
} catch (e) {
  check('driving chromium', false, String(e) + ' ' + chromeErr.slice(-1000));
}
clearTimeout(deadline);
chrome.kill('SIGKILL');
process.exit(fails ? 1 : 0);

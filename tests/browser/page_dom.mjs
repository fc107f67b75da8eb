// Drives a page in headless Chromium over the DevTools protocol on a pipe (node built-ins only):
//
//   node page_dom.mjs CHROMIUM URL PROFILE_DIR SECONDS
//
// opens URL, waits until the page's #status reads "answered" or "error" (the page at / of
// `flashmem serve` sets it when a chat answer has ended), then prints the DOM (outerHTML).
// Exit 0 when the status was reached, 2 after SECONDS without it (the DOM is printed anyway),
// 1 when Chromium fails.
import { spawn } from "node:child_process";

const [chromium, url, profile, secondsArg] = process.argv.slice(2);
const deadline = Date.now() + 1000 * Number(secondsArg);
// How often the page's status is read: fine enough for a test, far below a decode step's cost.
const kPollMs = 100;

// --remote-debugging-pipe: commands go to the browser on fd 3, replies and events come on fd 4,
// each a JSON message ended by a NUL byte.
const browser = spawn(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 `--user-data-dir=${profile}`, "--remote-debugging-pipe", "about:blank"],
                      { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
browser.stderr.resume();
browser.on("exit", (code) => {
  if (!finished) {
    console.error(`chromium exited (${code}) before the page was read`);
    process.exit(1);
  }
});
let finished = false, nextId = 1, pending = "";
const waiting = new Map();  // id -> resolve
browser.stdio[4].on("data", (bytes) => {
  pending += bytes.toString("utf8");
  let end;
  while ((end = pending.indexOf("\0")) >= 0) {
    const message = JSON.parse(pending.slice(0, end));
    pending = pending.slice(end + 1);
    if (message.id && waiting.has(message.id)) {
      waiting.get(message.id)(message);
      waiting.delete(message.id);
    }
  }
});

function send(method, params = {}, sessionId = undefined) {
  const id = nextId++;
  browser.stdio[3].write(JSON.stringify({ id, method, params, sessionId }) + "\0");
  return new Promise((resolve, reject) => waiting.set(id, (m) => (m.error ? reject(new Error(m.error.message)) : resolve(m.result))));
}

async function evaluate(session, expression) {
  const r = await send("Runtime.evaluate", { expression, returnByValue: true }, session);
  return r.result.value;
}

try {
  const { targetId } = await send("Target.createTarget", { url });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  let status = "";
  while (Date.now() < deadline) {
    status = await evaluate(sessionId, "document.getElementById('status')?.textContent ?? ''");
    if (status === "answered" || status === "error") break;
    await new Promise((resolve) => setTimeout(resolve, kPollMs));
  }
  // One more refresh of the server's figures (the page reads them every second).
  await new Promise((resolve) => setTimeout(resolve, 1200));
  console.log(await evaluate(sessionId, "document.documentElement.outerHTML"));
  finished = true;
  await send("Browser.close").catch(() => {});
  process.exitCode = status === "answered" || status === "error" ? 0 : 2;
} catch (e) {
  finished = true;
  console.error(String(e));
  browser.kill();
  process.exitCode = 1;
}

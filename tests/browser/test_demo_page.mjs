// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// against the demo page of a real `kws serve` on its embedded broker, with
// `kws send` and `kws tail` as the Kafka side:
//   node test_demo_page.mjs [SCREENSHOT_DIR]   (KWS_BIN = the kws binary,
//                                             KWS_CHROMIUM = another Chromium)
// Skips with exit 77, loudly, only when Chromium or node_modules is missing
// (scripts/setup installs both, so CI never skips). Every wait is bounded;
// on failure it prints the server's stderr and the page's console, and saves
// a screenshot of the moment it failed.

import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const SKIP = 77;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.KWS_CHROMIUM || "/usr/bin/chromium";
const KWS = process.env.KWS_BIN || path.join(HERE, "..", "..", "build", "cmd", "kws");
const SHOT_DIR = process.argv[2] || process.cwd();
const STEP_TIMEOUT = 20_000; // one wait; a hang is what it guards against, not slowness

function skip(why) {
  console.log(`SKIP: browser test: ${why}`);
  console.log("SKIP: run scripts/setup (installs chromium, nodejs, npm and tests/browser/node_modules)");
  process.exit(SKIP);
}
if (!fs.existsSync(CHROMIUM)) skip(`${CHROMIUM} is missing (Debian package 'chromium')`);
let chromium;
try {
  chromium = createRequire(import.meta.url)("playwright-core").chromium;
} catch {
  skip(`playwright-core is not installed in ${path.join(HERE, "node_modules")} (npm ci in tests/browser)`);
}
if (!fs.existsSync(KWS)) {
  console.error(`browser test: KWS_BIN ${KWS} does not exist`);
  process.exit(1);
}

// ---- processes ---------------------------------------------------------------
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "kws-browser-"));
const home = path.join(scratch, "home");
fs.mkdirSync(home);
// Hermetic: no KWS_* settings or config file from whoever runs the test.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("KWS_")));
Object.assign(env, { HOME: home, XDG_CONFIG_HOME: home, NO_COLOR: "1" });

const live = [];
function cleanUp() {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.on("exit", cleanUp);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(1));

// The server dies with this process even if it is SIGKILLed (CTest's timeout):
// setpriv sets PR_SET_PDEATHSIG before it executes kws.
function spawnDaemon(args) {
  const setpriv = "/usr/bin/setpriv";
  const [cmd, argv] = fs.existsSync(setpriv) ? [setpriv, ["--pdeathsig", "KILL", "--", KWS, ...args]] : [KWS, args];
  const child = spawn(cmd, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
  live.push(child);
  child.stderrText = "";
  child.stderr.on("data", (d) => { child.stderrText += d; });
  return child;
}

function kws(args, { input, timeout = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(KWS, args, { env, timeout, killSignal: "SIGKILL", maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`kws ${args.join(" ")} failed (${err.killed ? "timed out" : `exit ${err.code}`})\n` +
                           `stdout: ${stdout}\nstderr: ${stderr}`));
        } else resolve(stdout);
      });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

// Reads KEY=value lines from the server's stdout until all keys are seen.
function readHandshake(child, keys, timeout) {
  return new Promise((resolve, reject) => {
    const found = {};
    let buf = "";
    const timer = setTimeout(() => reject(new Error(
      `kws serve printed no ${keys.join("/")} within ${timeout} ms; stdout so far: ${JSON.stringify(buf)}`)), timeout);
    child.on("exit", (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`kws serve exited (${code ?? sig}) before it was ready`));
    });
    child.stdout.on("data", (d) => {
      buf += d;
      for (const line of buf.split("\n")) {
        const m = /^([A-Z]+)=(.*)$/.exec(line);
        if (m && keys.includes(m[1])) found[m[1]] = m[2];
      }
      if (keys.every((k) => k in found)) { clearTimeout(timer); resolve(found); }
    });
  });
}

// ---- steps ---------------------------------------------------------------------
const steps = [];
const step = (name, fn) => steps.push({ name, fn });
const ctx = { consoleLines: [] };
const uid = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const topic = `browser-${uid}`;
const other = `browser-${uid}-other`;

step("kws serve starts on the embedded broker and prints URL= and BROKERS=", async () => {
  ctx.server = spawnDaemon(["serve", "--listen", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0"]);
  const hs = await readHandshake(ctx.server, ["URL", "BROKERS"], 30_000);
  if (!/^ws:\/\/127\.0\.0\.1:\d+\/$/.test(hs.URL)) throw new Error(`unexpected URL= line: ${hs.URL}`);
  ctx.pageUrl = hs.URL.replace(/^ws:/, "http:");
  ctx.brokers = hs.BROKERS;
});

step("two topics exist, one with a message from before the page opened", async () => {
  await kws(["send", "-b", ctx.brokers, "-k", "early", topic, "before-page"]);
  await kws(["send", "-b", ctx.brokers, other, "other-first"]);
});

step("the page loads from GET / and connects with the kws protocol (kws.v1)", async () => {
  ctx.userDataDir = fs.mkdtempSync(path.join(scratch, "chromium-"));
  ctx.browser = await chromium.launchPersistentContext(ctx.userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-quic", "--no-first-run"],
    viewport: { width: 1360, height: 900 },
    timeout: 60_000,
  });
  const page = ctx.browser.pages()[0] || (await ctx.browser.newPage());
  ctx.page = page;
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on("console", (m) => ctx.consoleLines.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => { ctx.consoleLines.push(`pageerror: ${e.message}`); ctx.pageError ??= e; });
  const protocols = [];
  // Every frame the page sends and receives, to check what crossed the socket
  // (a resume asked for, messages a filter kept on the bridge).
  ctx.sent = []; ctx.received = [];
  page.on("websocket", (ws) => {
    protocols.push(ws.url());
    ws.on("framesent", (f) => ctx.sent.push(String(f.payload)));
    ws.on("framereceived", (f) => ctx.received.push(String(f.payload)));
  });
  const resp = await page.goto(ctx.pageUrl);
  if (!resp || resp.status() !== 200) throw new Error(`GET / answered ${resp && resp.status()}`);
  const type = resp.headers()["content-type"] || "";
  if (!type.startsWith("text/html")) throw new Error(`GET / has Content-Type ${JSON.stringify(type)}`);
  await page.waitForSelector('#status[data-state="open"]');
  const proto = await page.evaluate(() => window.kwsDemo.socket.protocol);
  if (proto !== "kws.v1") throw new Error(`the server chose subprotocol ${JSON.stringify(proto)}`);
  const wsUrl = new URL(protocols[0]);
  if (wsUrl.pathname !== "/v2/broker/") throw new Error(`the page connected to ${protocols[0]}`);
});

step("subscribing from earliest shows the older message and marks both topics live", async () => {
  const { page } = ctx;
  await page.fill("#sub-topics", `${topic}, ${other}`);
  await page.selectOption("#sub-mode", "earliest");
  await page.click("#sub-btn");
  await page.waitForSelector(`.chip[data-topic="${topic}"][data-state="live"]`);
  await page.waitForSelector(`.chip[data-topic="${other}"][data-state="live"]`);
  const card = await page.waitForSelector(`.msg[data-topic="${topic}"][data-key="early"]`);
  const value = await card.$eval(".value", (e) => e.textContent);
  if (value !== "before-page") throw new Error(`the older message shows ${JSON.stringify(value)}`);
});

step("replayed history is marked and counted apart from the live rate", async () => {
  const { page } = ctx;
  const isHistory = await page.$eval(`.msg[data-topic="${topic}"][data-key="early"]`, (e) => e.classList.contains("history"));
  if (!isHistory) throw new Error("the message from before the subscription is not marked as history");
  // The legend says how many came from history; the plotted live counts never include them.
  await page.waitForSelector(`#legend span[data-topic="${topic}"] >> text=from history`);
  const r = await page.evaluate((t) => {
    const x = window.kwsDemo.rates.get(t);
    return { replayed: x.replayed, live: x.now + x.history.reduce((a, b) => a + b, 0) };
  }, topic);
  if (r.replayed !== 1 || r.live !== 0) throw new Error(`expected 1 replayed and 0 live for ${topic}, got ${JSON.stringify(r)}`);
});

step("a replay of many old messages from earliest is not plotted as live: the live series stays flat, then counts a live one", async () => {
  // On a page of its own, so that its messages push none out of the main page.
  const page = await ctx.browser.newPage();
  try {
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on("pageerror", (e) => { ctx.consoleLines.push(`pageerror (history page): ${e.message}`); ctx.pageError ??= e; });
    await page.goto(ctx.pageUrl);
    await page.waitForSelector('#status[data-state="open"]');
    const histTopic = `${topic}-history`;
    const count = 3000;
    await kws(["send", "-b", ctx.brokers, histTopic], { input: Array.from({ length: count }, (_, i) => `old ${i}\n`).join("") });
    await page.fill("#sub-topics", histTopic);
    await page.selectOption("#sub-mode", "earliest");
    await page.click("#sub-btn");
    await page.waitForFunction(([t, n]) => window.kwsDemo.rates.get(t)?.replayed === n, [histTopic, count]);
    // A second goes by, so the replay's second is sampled into the series.
    await page.waitForFunction((t) => window.kwsDemo.chart[t].replayed.slice(0, -1).some((x) => x > 0), histTopic);
    let series = await page.evaluate((t) => window.kwsDemo.chart[t], histTopic);
    const sum = (xs) => xs.reduce((a, b) => a + b, 0);
    if (sum(series.live) !== 0 || sum(series.replayed) !== count) {
      throw new Error(`after replaying ${count} old messages the chart has live ${sum(series.live)}, replayed ${sum(series.replayed)}`);
    }
    // The legend, redrawn every second, tells the replay apart.
    await page.waitForFunction(([t, n]) => document.querySelector(`#legend span[data-topic="${t}"]`)?.textContent
      .includes(`+ ${n.toLocaleString()} from history`), [histTopic, count]);
    await kws(["send", "-b", ctx.brokers, "-k", "live-one", histTopic, "live"]);
    await page.waitForSelector(`.msg[data-topic="${histTopic}"][data-key="live-one"]:not(.history)`);
    series = await page.evaluate((t) => window.kwsDemo.chart[t], histTopic);
    if (sum(series.live) !== 1 || sum(series.replayed) !== count) {
      throw new Error(`after one live message the chart has live ${JSON.stringify(series.live)}, replayed ${sum(series.replayed)}`);
    }
  } finally {
    await page.close();
  }
});

step("the topics the client may read: listed when the bridge has the topics frame, else hidden without an error", async () => {
  const { page } = ctx;
  const answer = await page.waitForFunction(
    () => ![...window.kwsDemo.pending.values()].some((p) => p.kind === "topics"));
  await answer.dispose();
  const reply = ctx.received.map((f) => { try { return JSON.parse(f); } catch { return null; } })
    .find((f) => f && (f.type === "topics" || (f.type === "error" && f.code === "unknown_type")));
  if (!reply) throw new Error(`no answer to the topics frame among ${ctx.received.length} frames received`);
  const hidden = await page.$eval("#picker", (e) => e.hidden);
  if (reply.type === "error") {
    // This bridge predates the topics frame: the page degrades to typing.
    if (!hidden) throw new Error("the bridge answered unknown_type but the topic list shows");
    if (await page.$(".toast")) throw new Error("unknown_type for the topics frame was shown as an error toast");
    console.log("note: this kws serve has no topics frame (unknown_type): the list is hidden");
    return;
  }
  if (hidden) throw new Error(`the bridge listed ${JSON.stringify(reply.topics)} but the list is hidden`);
  for (const t of [topic, other]) await page.waitForSelector(`#picker-list button[data-topic="${t}"]`);
  await page.click(`#picker-list button[data-topic="${other}"]`);
  const typed = await page.inputValue("#sub-topics");
  if (typed !== other) throw new Error(`picking ${other} typed ${JSON.stringify(typed)}`);
  await page.click(`#picker-list button[data-topic="${other}"]`);
  if ((await page.inputValue("#sub-topics")) !== "") throw new Error("picking a topic again does not take it out");
  // A topic created after the list came shows once the field is focused again.
  const later = `${topic}-later`;
  await kws(["send", "-b", ctx.brokers, later, "created after the page opened"]);
  await page.click("#send-key"); // away from the topics field, then back
  await page.waitForTimeout(1100); // the bridge caches the listing for a second
  await page.focus("#sub-topics");
  await page.waitForSelector(`#picker-list button[data-topic="${later}"]`);
  await page.click("#send-key");
});

step("a message from kws send appears live, with partition, offset, key and pretty JSON", async () => {
  const { page } = ctx;
  await kws(["send", "-b", ctx.brokers, "-k", "cli-key", "-H", "origin=cli", topic, '{"from":"cli","n":1}']);
  const card = await page.waitForSelector(`.msg[data-topic="${topic}"][data-key="cli-key"]`);
  const got = await card.evaluate((e) => ({
    partition: e.dataset.partition, offset: e.dataset.offset,
    head: e.querySelector(".msg-head").textContent,
    headers: e.querySelector(".msg-headers")?.textContent,
    value: e.querySelector(".value").textContent,
    keys: e.querySelectorAll(".value .j-key").length,
    first: e.parentElement.firstElementChild === e,
  }));
  if (!/^\d+$/.test(got.partition) || !/^\d+$/.test(got.offset)) throw new Error(`no partition/offset: ${JSON.stringify(got)}`);
  if (!got.head.includes(`partition ${got.partition}`) || !got.head.includes(`offset ${got.offset}`)) {
    throw new Error(`partition/offset not shown: ${got.head}`);
  }
  if (!got.head.includes("cli-key")) throw new Error(`key not shown: ${got.head}`);
  if (got.headers !== "origin=cli") throw new Error(`headers shown as ${JSON.stringify(got.headers)}`);
  if (got.value !== '{"from": "cli", "n": 1}' || got.keys !== 2) {
    throw new Error(`value not pretty-printed JSON: ${JSON.stringify(got.value)} (${got.keys} keys coloured)`);
  }
  if (!got.first) throw new Error("the newest message is not at the top");
  if (await card.evaluate((e) => e.classList.contains("history") || e.classList.contains("own"))) {
    throw new Error("a live message from kws send is marked as history or as sent from the page");
  }
});

step("a message sent from the page is acked with its partition and offset", async () => {
  const { page } = ctx;
  await page.fill("#send-topic", topic);
  await page.fill("#send-key", "page-key");
  await page.fill("#send-value", '{"from":"page"}');
  await page.click("#add-hdr");
  await page.fill(".hdr-row .hdr-name", "trace");
  await page.fill(".hdr-row .hdr-value", "browser-test");
  await page.click("#send-btn");
  const item = await page.waitForSelector('.result[data-state="ack"]');
  ctx.ack = await item.evaluate((e) => ({ partition: e.dataset.partition, offset: e.dataset.offset, text: e.textContent }));
  if (!ctx.ack.text.includes(`partition ${ctx.ack.partition} · offset ${ctx.ack.offset}`)) {
    throw new Error(`the ack does not show partition and offset: ${ctx.ack.text}`);
  }
});

step("kws tail reads the page's message back: key, value, header, partition and offset as acked", async () => {
  const out = await kws(["tail", "-b", ctx.brokers, "-o", "beginning", "-e", "-J", topic]);
  const envs = out.trim().split("\n").map((l) => JSON.parse(l));
  const mine = envs.filter((e) => e.key === "page-key");
  if (mine.length !== 1) throw new Error(`expected one message with key page-key, got ${mine.length}:\n${out}`);
  const e = mine[0];
  if (e.message !== '{"from":"page"}') throw new Error(`value ${JSON.stringify(e.message)}`);
  if (JSON.stringify(e.headers) !== '[{"name":"trace","value":"browser-test"}]') {
    throw new Error(`headers ${JSON.stringify(e.headers)}`);
  }
  if (String(e.partition) !== ctx.ack.partition || String(e.offset) !== ctx.ack.offset) {
    throw new Error(`tail says ${e.partition}/${e.offset}, the page's ack said ${ctx.ack.partition}/${ctx.ack.offset}`);
  }
  // And the page, subscribed to that topic, shows it as a message too.
  await ctx.page.waitForSelector(
    `.msg[data-topic="${topic}"][data-key="page-key"][data-partition="${e.partition}"][data-offset="${e.offset}"]`);
  ctx.pageEnvelope = e;
  // Highlighted as the page's own send (the ack and the message may come in either order).
  await ctx.page.waitForSelector(`.msg.own[data-topic="${topic}"][data-key="page-key"] .mine`, { state: "visible" });
  if (await ctx.page.$(`.msg.own[data-key="cli-key"]`)) throw new Error("a message from kws send is marked as the page's own");
});

step("copy JSON on a message copies its envelope, which kws send -J reads back", async () => {
  const { page } = ctx;
  await ctx.browser.grantPermissions(["clipboard-read", "clipboard-write"], { origin: ctx.pageUrl.replace(/\/$/, "") });
  const btn = await page.waitForSelector(`.msg[data-topic="${topic}"][data-key="page-key"] .copy`);
  await btn.click();
  await page.waitForSelector(`.msg[data-topic="${topic}"][data-key="page-key"] .copy >> text=copied ✓`);
  const copied = await page.evaluate(() => window.kwsDemo.lastCopied);
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  if (clip !== copied) throw new Error(`the clipboard holds ${JSON.stringify(clip)}, the page copied ${JSON.stringify(copied)}`);
  const got = JSON.parse(clip), want = ctx.pageEnvelope;
  for (const k of ["topic", "partition", "offset", "key", "message", "timestamp"]) {
    if (got[k] !== want[k]) throw new Error(`copied ${k} ${JSON.stringify(got[k])}, kws tail says ${JSON.stringify(want[k])}`);
  }
  if (JSON.stringify(got.headers) !== JSON.stringify(want.headers)) throw new Error(`copied headers ${JSON.stringify(got.headers)}`);
  // What was copied is an envelope kws send -J accepts.
  const copyTopic = `${topic}-copy`;
  await kws(["send", "-b", ctx.brokers, "-J", copyTopic], { input: clip + "\n" });
  const back = JSON.parse((await kws(["tail", "-b", ctx.brokers, "-o", "beginning", "-e", "-J", copyTopic])).trim());
  if (back.key !== "page-key" || back.message !== want.message) throw new Error(`sent back as ${JSON.stringify(back)}`);
});

step("the compact view shows each message on one line", async () => {
  const { page } = ctx;
  await page.click("#compact");
  const heights = await page.$$eval(".msg", (cards) => cards.map((c) => c.getBoundingClientRect().height));
  await page.click("#compact");
  if (!heights.length) throw new Error("no messages to look at");
  const tall = heights.filter((h) => h > 32);
  if (tall.length) throw new Error(`compact cards taller than one line: ${JSON.stringify(heights)}`);
  const normal = await page.$$eval(".msg", (cards) => cards.map((c) => c.getBoundingClientRect().height));
  if (!normal.some((h) => h > 40)) throw new Error(`the toggle did not go back to full cards: ${JSON.stringify(normal)}`);
});

step("a message the bridge refuses shows its error code", async () => {
  const { page } = ctx;
  await page.fill("#send-topic", "not a valid topic!");
  await page.fill("#send-key", "");
  await page.click("#send-btn");
  const item = await page.waitForSelector('.result[data-state="error"]');
  const text = await item.textContent();
  if (!text.includes("bad_topic")) throw new Error(`the error shows ${JSON.stringify(text)}`);
});

step("after the socket drops, the page reconnects, resubscribes and shows nothing twice", async () => {
  const { page } = ctx;
  await page.evaluate(() => window.kwsDemo.socket.close());
  await page.waitForSelector('#status:not([data-state="open"])');
  await page.waitForSelector('#status[data-state="open"]');
  await page.waitForSelector(`.chip[data-topic="${topic}"][data-state="live"]`);
  await kws(["send", "-b", ctx.brokers, "-k", "after-reconnect", topic, "back again"]);
  await page.waitForSelector(`.msg[data-topic="${topic}"][data-key="after-reconnect"]`);
  const counts = await page.evaluate((t) => {
    const n = {};
    for (const e of document.querySelectorAll(`.msg[data-topic="${t}"]`)) {
      const k = `${e.dataset.partition}/${e.dataset.offset}`;
      n[k] = (n[k] || 0) + 1;
    }
    return n;
  }, topic);
  const twice = Object.entries(counts).filter(([, c]) => c > 1);
  if (twice.length) throw new Error(`shown more than once after the reconnect: ${JSON.stringify(twice)}`);
  if (Object.keys(counts).length !== 4) throw new Error(`expected 4 messages of ${topic}, got ${JSON.stringify(counts)}`);
});

// Reconnects now, unless the page's backoff timer already did.
const retryNow = (page) => page.evaluate(() => { const b = document.getElementById("retry"); if (!b.hidden) b.click(); });

// The page's messages of topic T, each "partition/offset" once, against what
// kws tail reads from Kafka: nothing missing, nothing twice.
async function sameAsKafka(page, t, filterKey) {
  const shown = await page.evaluate((name) => [...document.querySelectorAll(`.msg[data-topic="${name}"]`)]
    .map((e) => `${e.dataset.partition}/${e.dataset.offset}`), t);
  const envs = (await kws(["tail", "-b", ctx.brokers, "-o", "beginning", "-e", "-J", t])).trim().split("\n")
    .map((l) => JSON.parse(l)).filter((e) => filterKey === undefined || e.key === filterKey);
  const want = envs.map((e) => `${e.partition}/${e.offset}`).sort();
  const got = [...shown].sort();
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${t}: the page shows ${JSON.stringify(got)}, Kafka holds ${JSON.stringify(want)}`);
  }
}

step("messages produced while the page was away arrive once after it resumes, and it says so", async () => {
  const { page } = ctx;
  // The reconnect is held back (no WebSocket can be made) while kws send
  // produces, so the messages are produced while the page is away.
  await page.evaluate(() => {
    window.realWebSocket = window.WebSocket;
    window.WebSocket = function HeldBack() { throw new Error("reconnect held back by the test"); };
  });
  const sentBefore = ctx.sent.length;
  await page.evaluate(() => window.kwsDemo.socket.close());
  await page.waitForSelector('#status[data-state="waiting"]');
  for (let i = 0; i < 3; i++) await kws(["send", "-b", ctx.brokers, "-k", `away-${i}`, topic, `produced while away ${i}`]);
  await page.evaluate(() => { window.WebSocket = window.realWebSocket; });
  await retryNow(page);
  await page.waitForSelector(`.chip[data-topic="${topic}"][data-resumed="resumed, no gap"]`);
  const said = await page.waitForSelector(`.notice.good >> text=${topic}: resumed after the reconnect, no gap`);
  if (!said) throw new Error("no notice that the page resumed");
  for (let i = 0; i < 3; i++) await page.waitForSelector(`.msg[data-topic="${topic}"][data-key="away-${i}"]`);
  // It was the bridge's resume: the subscribe frame carried positions.
  const frames = ctx.sent.slice(sentBefore).map((f) => JSON.parse(f)).filter((f) => f.type === "subscribe" && f.topics[0] === topic);
  if (frames.length !== 1 || !new RegExp(`^${topic}:\\d+:-?\\d+(,${topic}:\\d+:-?\\d+)*$`).test(frames[0].resume || "")) {
    throw new Error(`the page did not resubscribe with resume positions: ${JSON.stringify(frames)}`);
  }
  await sameAsKafka(page, topic);
});

step("a resume whose next offsets retention deleted says what was lost, and goes on after the gap", async () => {
  const { page } = ctx;
  // The embedded broker keeps about 5 MiB per partition: 12 MB produced
  // while the page is away delete the message it showed and what followed.
  const lostTopic = `${topic}-lost`;
  await kws(["send", "-b", ctx.brokers, "-p", "0", "-k", "shown", lostTopic, "shown before the gap"]);
  await page.fill("#sub-topics", lostTopic);
  await page.selectOption("#sub-mode", "earliest");
  await page.click("#sub-btn");
  await page.waitForSelector(`.msg[data-topic="${lostTopic}"][data-key="shown"]`);
  await page.evaluate(() => {
    window.realWebSocket = window.WebSocket;
    window.WebSocket = function HeldBack() { throw new Error("reconnect held back by the test"); };
  });
  await page.evaluate(() => window.kwsDemo.socket.close());
  await page.waitForSelector('#status[data-state="waiting"]');
  const count = 4000;
  await kws(["send", "-b", ctx.brokers, "-p", "0", lostTopic],
            { input: Array.from({ length: count }, (_, i) => `${String(i).padStart(4, "0")}:${"x".repeat(3000)}\n`).join("") });
  // The notice is soon pushed out of the 200 messages kept: every notice shown is recorded.
  await page.evaluate((t) => {
    window.noticesShown = [];
    new MutationObserver((records) => {
      for (const r of records) for (const n of r.addedNodes) if (n.classList?.contains("notice")) window.noticesShown.push(n.className + ": " + n.textContent);
    }).observe(document.getElementById("messages"), { childList: true });
    // Every text the chip of the topic had: "no gap" must never be among them.
    window.lostChipSaid = [];
    new MutationObserver(() => {
      const c = document.querySelector(`.chip[data-topic="${t}"]`);
      if (c) window.lostChipSaid.push(`${c.dataset.resumed || ""} | ${c.textContent}`);
    }).observe(document.getElementById("chips"), { childList: true, subtree: true, attributes: true, characterData: true });
    window.WebSocket = window.realWebSocket;
  }, lostTopic);
  const from = ctx.received.length;
  await retryNow(page);
  // Delivery goes on after the gap up to the last message produced; by
  // then every lost notice has come (the gap may be told in two pieces when
  // the live reader had read part of it: each reader says what it skipped).
  await page.waitForSelector(`.msg[data-topic="${lostTopic}"][data-offset="${count}"]`);
  const chip = await page.waitForSelector(`.chip[data-topic="${lostTopic}"][data-state="live"][data-resumed$=" lost"]`);
  const resumed = await chip.getAttribute("data-resumed");
  const m = /^resumed, (\d+) lost$/.exec(resumed);
  if (!m) throw new Error(`the chip says ${JSON.stringify(resumed)}`);
  // The notices name the deleted offsets from the one after the message
  // shown (offset 0), contiguous, up to where delivery goes on.
  const shown = await page.evaluate(() => window.noticesShown);
  const mine = shown.filter((n) => n.includes(lostTopic));
  const gap = mine.map((n) => /^notice bad: Kafka deleted offsets (\d+)–(\d+) of (\S+) partition 0 /.exec(n)).filter(Boolean);
  let next = 1;
  for (const g of gap) {
    if (Number(g[1]) !== next || g[3] !== lostTopic) {
      throw new Error(`expected notices of offsets 1–N deleted, contiguous, the page said: ${JSON.stringify(mine)}`);
    }
    next = Number(g[2]) + 1;
  }
  if (gap.length === 0) throw new Error(`no notice of the deleted offsets; the page said: ${JSON.stringify(mine)}`);
  const to = next - 1;
  if (to !== Number(m[1])) throw new Error(`the chip says ${m[1]} lost, the notices offsets 1–${to}`);
  // Never "no gap", not even for a moment before the lost notices came.
  const chipSaid = await page.evaluate(() => window.lostChipSaid);
  if (chipSaid.some((x) => x.includes("no gap")) || mine.some((n) => n.includes("no gap"))) {
    throw new Error(`the page said "no gap" about a resume that lost messages: ${JSON.stringify([...new Set(chipSaid)])}`);
  }
  // No other gap, and nothing twice (checked on what crossed the socket:
  // the page keeps 200).
  const frames = ctx.received.slice(from).map((f) => JSON.parse(f));
  const offsets = frames.filter((f) => f.type === undefined && f.topic === lostTopic).map((f) => f.offset);
  const want = Array.from({ length: count - to }, (_, i) => to + 1 + i);
  if (JSON.stringify(offsets) !== JSON.stringify(want)) {
    // What is needed to tell where a repeat came from.
    const seen = new Map();
    const repeats = [];
    offsets.forEach((o, i) => { if (seen.has(o)) repeats.push({ offset: o, first: seen.get(o), again: i }); else seen.set(o, i); });
    const around = repeats.length ? offsets.slice(Math.max(0, repeats[0].again - 5), repeats[0].again + 5) : [];
    const controls = frames.filter((f) => f.type !== undefined).map((f) => JSON.stringify(f).slice(0, 300));
    throw new Error(`after the gap the socket carried offsets ${offsets.slice(0, 3)}…${offsets.slice(-3)} (${offsets.length}), ` +
                    `expected ${to + 1}…${count}; repeats ${JSON.stringify(repeats.slice(0, 5))} around ${around}; ` +
                    `control frames ${JSON.stringify(controls)}; notices ${JSON.stringify(mine)}`);
  }
  await page.click(`.chip[data-topic="${lostTopic}"] button`);
  await page.waitForSelector(`.chip[data-topic="${lostTopic}"]`, { state: "detached" });
});

// A scripted bridge in the page (its WebSocket replaced before the page's
// script runs), to put frames in an order a real broker gives only by
// chance: a resume the reply calls recovered:true whose gap the reader finds
// afterwards, in a partition other than the one that came first.
async function scriptedPage() {
  const page = await ctx.browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on("pageerror", (e) => { ctx.consoleLines.push(`pageerror (scripted): ${e.message}`); ctx.pageError ??= e; });
  await page.addInitScript(() => {
    const bridge = window.fakeBridge = { sockets: [], sent: [] };
    class FakeWebSocket {
      static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
      constructor(url) {
        this.url = url; this.protocol = "kws.v1"; this.readyState = 0;
        bridge.sockets.push(this);
        setTimeout(() => { this.readyState = 1; this.onopen?.({}); }, 0);
      }
      send(text) {
        const f = JSON.parse(text);
        bridge.sent.push(f);
        if (f.type === "topics") this.deliver({ type: "topics", id: f.id, topics: ["scripted"] });
      }
      deliver(frame) { if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(frame) }); }
      close() {
        if (this.readyState === 3) return;
        this.readyState = 3;
        setTimeout(() => this.onclose?.({ code: 1006, reason: "" }), 0);
      }
    }
    window.WebSocket = FakeWebSocket;
  });
  await page.goto(ctx.pageUrl);
  await page.waitForSelector('#status[data-state="open"]');
  // Every text the chip of topic "scripted" had, and every notice, from now on.
  await page.evaluate(() => {
    window.chipSaid = []; window.noticesShown = [];
    new MutationObserver(() => {
      const c = document.querySelector('.chip[data-topic="scripted"]');
      const said = c ? `${c.dataset.resumed || ""} | ${c.textContent}` : "";
      if (said && window.chipSaid[window.chipSaid.length - 1] !== said) window.chipSaid.push(said);
    }).observe(document.getElementById("chips"), { childList: true, subtree: true, attributes: true, characterData: true });
    new MutationObserver((records) => {
      for (const r of records) for (const n of r.addedNodes) if (n.classList?.contains("notice")) window.noticesShown.push(n.textContent);
    }).observe(document.getElementById("messages"), { childList: true });
  });
  return page;
}

// Frames from the scripted bridge, in order, on its newest socket.
const deliver = (page, frames) => page.evaluate((fs) => {
  const s = window.fakeBridge.sockets[window.fakeBridge.sockets.length - 1];
  for (const f of fs) s.deliver(f);
}, frames);

// The subscribe frame the page sends next (after `after` frames), once it is sent.
async function nextSubscribe(page, after) {
  const h = await page.waitForFunction((n) => window.fakeBridge.sent.slice(n).find((f) => f.type === "subscribe"), after);
  return h.jsonValue();
}

step("a resume the reply calls recovered but whose gap a lost notice tells later never says 'no gap' (scripted bridge)", async () => {
  const page = await scriptedPage();
  try {
    const msg = (partition, offset) => ({ topic: "scripted", partition, offset, key: `k${partition}-${offset}`,
                                          message: `m${partition}-${offset}`, timestamp: 1700000000000 + offset, timestamp_type: "create" });
    await page.fill("#sub-topics", "scripted");
    await page.selectOption("#sub-mode", "earliest");
    let sent = await page.evaluate(() => window.fakeBridge.sent.length);
    await page.click("#sub-btn");
    let sub = await nextSubscribe(page, sent);
    if (sub.resume) throw new Error(`a first subscribe with resume: ${JSON.stringify(sub)}`);
    await deliver(page, [{ type: "subscribed", topic: "scripted", partitions: 2, offset: "earliest", start_offsets: [0, 0],
                           end_offsets: [1, 0], id: sub.id }, msg(0, 0)]);
    await page.waitForSelector('.msg[data-topic="scripted"][data-offset="0"]');

    // Reconnect. The reply says recovered:true; partition 0 goes on at once
    // (the message shown, sent again to check it, then 1); partition 1's
    // offset 0 turns out deleted, told by a lost notice before its offset 1.
    sent = await page.evaluate(() => window.fakeBridge.sent.length);
    await page.evaluate(() => window.fakeBridge.sockets[window.fakeBridge.sockets.length - 1].close());
    sub = await nextSubscribe(page, sent);
    if (sub.resume !== "scripted:0:-1,scripted:1:-1") throw new Error(`the page resumed with ${JSON.stringify(sub.resume)}`);
    await deliver(page, [{ type: "subscribed", topic: "scripted", partitions: 2, offset: "earliest", start_offsets: [0, 0],
                           end_offsets: [2, 2], recovered: true, id: sub.id }, msg(0, 0), msg(0, 1)]);
    await page.waitForSelector('.msg[data-topic="scripted"][data-offset="1"][data-partition="0"]');
    let chip = await page.getAttribute('.chip[data-topic="scripted"]', "data-resumed");
    if (chip !== "resumed, checking for a gap") {
      throw new Error(`with partition 1 not yet past its position the chip says ${JSON.stringify(chip)}`);
    }
    await deliver(page, [{ type: "lost", topic: "scripted", partition: 1, from: 0, to: 0 }, msg(1, 1)]);
    await page.waitForSelector('.chip[data-topic="scripted"][data-resumed="resumed, 1 lost"]');
    await page.waitForSelector('.msg[data-topic="scripted"][data-offset="1"][data-partition="1"]');
    let said = await page.evaluate(() => ({ chip: window.chipSaid, notices: window.noticesShown }));
    if (said.chip.some((t) => t.includes("no gap")) || said.notices.some((t) => t.includes("no gap"))) {
      throw new Error(`the page said "no gap" about a resume that lost a message: ${JSON.stringify(said)}`);
    }

    // Another reconnect that loses nothing: "no gap" once both partitions
    // are past their positions, and not before.
    sent = await page.evaluate(() => window.fakeBridge.sent.length);
    await page.evaluate(() => { window.chipSaid.length = 0; window.fakeBridge.sockets[window.fakeBridge.sockets.length - 1].close(); });
    sub = await nextSubscribe(page, sent);
    if (sub.resume !== "scripted:0:0,scripted:1:0") throw new Error(`the page resumed with ${JSON.stringify(sub.resume)}`);
    await deliver(page, [{ type: "subscribed", topic: "scripted", partitions: 2, offset: "earliest", start_offsets: [1, 1],
                           end_offsets: [3, 3], recovered: true, id: sub.id }, msg(0, 1), msg(1, 1), msg(0, 2)]);
    await page.waitForSelector('.msg[data-topic="scripted"][data-offset="2"][data-partition="0"]');
    chip = await page.getAttribute('.chip[data-topic="scripted"]', "data-resumed");
    if (chip !== "resumed, checking for a gap") throw new Error(`before partition 1 went on the chip says ${JSON.stringify(chip)}`);
    await deliver(page, [msg(1, 2)]);
    await page.waitForSelector('.chip[data-topic="scripted"][data-resumed="resumed, no gap"]');
    said = await page.evaluate(() => window.chipSaid);
    const first = said.findIndex((t) => t.includes("no gap"));
    if (first < 0 || said.slice(0, first).some((t) => !t.includes("checking for a gap") && t.includes("resumed"))) {
      throw new Error(`the chip said, in order: ${JSON.stringify(said)}`);
    }

    // A resume whose partition 1 gets nothing more (a filter keeps its
    // messages on the bridge): the bridge's caught_up decides it, no gap.
    sent = await page.evaluate(() => window.fakeBridge.sent.length);
    await page.evaluate(() => { window.chipSaid.length = 0; window.fakeBridge.sockets[window.fakeBridge.sockets.length - 1].close(); });
    sub = await nextSubscribe(page, sent);
    if (sub.caught_up !== true) throw new Error(`the page's subscribe does not ask for caught_up: ${JSON.stringify(sub)}`);
    await deliver(page, [{ type: "subscribed", topic: "scripted", partitions: 2, offset: "earliest", start_offsets: [3, 3],
                           end_offsets: [4, 9], recovered: true, id: sub.id }, msg(0, 2), msg(0, 3)]);
    await page.waitForSelector('.msg[data-topic="scripted"][data-offset="3"][data-partition="0"]');
    chip = await page.getAttribute('.chip[data-topic="scripted"]', "data-resumed");
    if (chip !== "resumed, checking for a gap") throw new Error(`before caught_up the chip says ${JSON.stringify(chip)}`);
    await deliver(page, [{ type: "caught_up", topic: "scripted" }]);
    await page.waitForSelector('.chip[data-topic="scripted"][data-resumed="resumed, no gap"]');
  } finally {
    await page.close();
  }
});

step("a server-side filter: only matching messages cross the socket, the count says so, an empty list says why", async () => {
  const { page } = ctx;
  await kws(["send", "-b", ctx.brokers, "-k", "flt-yes", topic, "match 1"]);
  await kws(["send", "-b", ctx.brokers, "-k", "flt-no", topic, "no match 1"]);
  await page.selectOption("#filter-kind", "key");
  await page.fill("#filter", "flt-yes");
  const from = ctx.received.length;
  await page.click("#filter-apply");
  await page.waitForSelector(`.chip[data-topic="${topic}"][data-state="live"]`);
  await page.waitForSelector(`.msg[data-topic="${topic}"][data-key="flt-yes"]`);
  await kws(["send", "-b", ctx.brokers, "-k", "flt-no", topic, "no match 2"]);
  await kws(["send", "-b", ctx.brokers, "-k", "flt-yes", topic, "match 2"]);
  await page.waitForFunction(() => document.querySelectorAll('.msg[data-key="flt-yes"]').length === 2);
  await page.waitForTimeout(1000); // a late non-matching message would show by now
  const keys = await page.$$eval(".msg", (cards) => cards.map((c) => c.dataset.key));
  if (keys.length !== 2 || keys.some((k) => k !== "flt-yes")) throw new Error(`shown with the filter: ${JSON.stringify(keys)}`);
  const received = await page.evaluate(() => window.kwsDemo.received);
  if (received !== 2) throw new Error(`the page counted ${received} messages, 2 match`);
  const countText = await page.textContent("#msg-count");
  if (!countText.startsWith("2 matching the filter")) throw new Error(`the count reads ${JSON.stringify(countText)}`);
  const crossed = ctx.received.slice(from).map((f) => JSON.parse(f)).filter((f) => f.type === undefined);
  if (crossed.some((f) => f.key !== "flt-yes")) {
    throw new Error(`non-matching messages crossed the socket: ${JSON.stringify(crossed.filter((f) => f.key !== "flt-yes"))}`);
  }
  await sameAsKafka(page, topic, "flt-yes");

  // A filter nothing matches: an empty list that says why.
  await page.fill("#filter", "no-such-key");
  await page.click("#filter-apply");
  await page.waitForSelector(`.chip[data-topic="${topic}"][data-state="live"]`);
  await page.waitForSelector(`.chip[data-topic="${other}"][data-state="live"]`);
  await page.waitForTimeout(500);
  const empty = await page.$eval("#messages", (e) => ({ n: e.children.length, why: getComputedStyle(e, "::before").content }));
  if (empty.n !== 0 || !empty.why.includes("No message matched the filter yet")) {
    throw new Error(`with a filter nothing matches, the list has ${empty.n} items and says ${empty.why}`);
  }

  // A filter the bridge refuses: bad_filter, shown by the filter.
  await page.selectOption("#filter-kind", "field");
  await page.fill("#filter", "/a~2=1");
  await page.click("#filter-apply");
  const err = await page.waitForSelector("#filter-error:not([hidden])");
  const errText = await err.textContent();
  if (!errText.startsWith("bad_filter:") || !errText.includes("JSON pointer")) throw new Error(`the filter error reads ${JSON.stringify(errText)}`);
  await page.waitForSelector(`.chip[data-topic="${topic}"][data-state="error"]`);

  // No filter: every message again, from each subscription's start.
  await page.click("#filter-clear");
  await page.waitForSelector(`.chip[data-topic="${topic}"][data-state="live"]`);
  await page.waitForSelector(`.chip[data-topic="${other}"][data-state="live"]`);
  await page.waitForSelector(`.msg[data-topic="${topic}"][data-key="flt-no"]`);
  await page.waitForSelector("#filter-error", { state: "hidden" });
});

step("on a phone (390x844, mobile) the messages come first, nothing is wider than the screen, and the forms subscribe and send", async () => {
  const phone = await ctx.browser.newPage();
  try {
    phone.setDefaultTimeout(STEP_TIMEOUT);
    phone.on("pageerror", (e) => { ctx.consoleLines.push(`pageerror (phone): ${e.message}`); ctx.pageError ??= e; });
    await phone.setViewportSize({ width: 390, height: 844 });
    // A phone, not a narrow window: a mobile viewport (meta viewport honoured,
    // no scrollbars) with touch, as Chromium's device emulation makes it.
    const cdp = await ctx.browser.newCDPSession(phone);
    await cdp.send("Emulation.setDeviceMetricsOverride", { width: 390, height: 844, deviceScaleFactor: 3, mobile: true });
    await cdp.send("Emulation.setTouchEmulationEnabled", { enabled: true, maxTouchPoints: 5 });
    await phone.goto(`${ctx.pageUrl}?topics=${encodeURIComponent(other)}&offset=earliest`);
    await phone.waitForSelector(`.msg[data-topic="${other}"]`);
    const box = await phone.evaluate(() => {
      const r = (sel) => document.querySelector(sel).getBoundingClientRect();
      return { list: r("#messages").top, first: r("#messages .msg").bottom, sub: r("#sub-form").top,
               send: r("#send-form").top, chart: r("#chart").top, wide: document.documentElement.scrollWidth,
               inner: innerWidth, touch: matchMedia("(pointer: coarse)").matches };
    });
    if (box.inner !== 390) throw new Error(`the phone viewport is ${box.inner}px wide, not 390`);
    if (box.list >= 400) throw new Error(`the message list starts ${box.list}px down on a 844px screen`);
    if (box.first > 844) throw new Error(`the first message ends ${box.first}px down, below the screen`);
    if (box.sub < box.list || box.send < box.list || box.chart < box.list) {
      throw new Error(`a form or the chart comes before the messages on a phone: ${JSON.stringify(box)}`);
    }
    if (box.wide > box.inner) throw new Error(`the page is ${box.wide}px wide on a ${box.inner}px screen`);
    // Every control of the forms fits the screen and is big enough to tap.
    const controls = await phone.evaluate(() => [...document.querySelectorAll(
      "#sub-form input:not([type=hidden]), #sub-form select, #sub-form button, #filter-form input, #filter-form select, " +
      "#send-form input, #send-form textarea, #send-form button, .toolbar button, .chip button")]
      .filter((e) => e.offsetParent !== null)
      .map((e) => { const r = e.getBoundingClientRect(); return { id: e.id || e.className || e.tagName, left: r.left, right: r.right, h: r.height, w: r.width }; }));
    const bad = controls.filter((c) => c.left < 0 || c.right > 390 || c.h < 32 || c.w < 32);
    if (bad.length) throw new Error(`controls off the screen or too small to tap: ${JSON.stringify(bad)}`);
    const fields = await phone.evaluate(() => ["sub-topics", "filter", "send-topic", "send-key", "send-value"].map((id) => {
      const e = document.getElementById(id), f = e.closest("form");
      return { id, w: e.getBoundingClientRect().width, form: f.getBoundingClientRect().width,
               font: parseFloat(getComputedStyle(e).fontSize) };
    }));
    for (const f of fields) {
      if (f.w < f.form * 0.9) throw new Error(`${f.id} is ${f.w}px wide in a ${f.form}px form`);
      if (f.font < 16) throw new Error(`${f.id} has ${f.font}px text: the phone would zoom into it`);
    }
    await phone.screenshot({ path: path.join(SHOT_DIR, "demo_page-phone.png") });

    // The forms are reached from the messages, and work: subscribe, then send.
    // A jump button scrolls its field into view and focuses it.
    const jumpTo = async (id) => {
      await phone.click(`.jump[data-jump="${id}"]`);
      await phone.waitForFunction((field) => {
        const r = document.getElementById(field).getBoundingClientRect();
        return document.activeElement.id === field && r.top >= 0 && r.bottom <= innerHeight;
      }, id);
    };
    await jumpTo("sub-topics");
    await phone.fill("#sub-topics", topic);
    await phone.selectOption("#sub-mode", "latest");
    await phone.click("#sub-btn");
    await phone.waitForSelector(`.chip[data-topic="${topic}"][data-state="live"]`);
    await jumpTo("send-topic");
    await phone.fill("#send-topic", topic);
    await phone.fill("#send-key", "from-phone");
    await phone.fill("#send-value", "sent on a phone");
    await phone.click("#send-btn");
    await phone.waitForSelector('.result[data-state="ack"]');
    await phone.waitForSelector(`.msg.own[data-topic="${topic}"][data-key="from-phone"]`);
    if ((await phone.evaluate(() => document.documentElement.scrollWidth)) > 390) throw new Error("the page grew wider than the phone");
  } finally {
    await phone.close();
  }
});

step("unsubscribing with a control frame stops that topic and keeps the other", async () => {
  const { page } = ctx;
  await page.click(`.chip[data-topic="${topic}"] button`);
  await page.waitForSelector(`.chip[data-topic="${topic}"]`, { state: "detached" });
  await kws(["send", "-b", ctx.brokers, "-k", "after-unsubscribe", topic, "must not show"]);
  await kws(["send", "-b", ctx.brokers, "-k", "marker", other, "still subscribed"]);
  await page.waitForSelector(`.msg[data-topic="${other}"][data-key="marker"]`);
  // Give a late delivery the same time again before calling it absent.
  await page.waitForTimeout(1000);
  if (await page.$(`.msg[data-key="after-unsubscribe"]`)) {
    throw new Error("a message of the unsubscribed topic reached the page");
  }
});

step("the rate chart counted the topic", async () => {
  const legend = await ctx.page.waitForSelector(`#legend >> text=${other}`);
  if (!legend) throw new Error("no legend entry");
  const painted = await ctx.page.evaluate(() => {
    const c = document.getElementById("chart");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
    return n;
  });
  if (painted < 1000) throw new Error(`the chart painted only ${painted} pixels`);
});

step("a page opened as /?topics=T&offset=earliest subscribes by itself", async () => {
  const second = await ctx.browser.newPage();
  try {
    second.setDefaultTimeout(STEP_TIMEOUT);
    second.on("pageerror", (e) => { ctx.consoleLines.push(`pageerror (second page): ${e.message}`); ctx.pageError ??= e; });
    await second.goto(`${ctx.pageUrl}?topics=${encodeURIComponent(other)}&offset=earliest`);
    await second.waitForSelector(`.chip[data-topic="${other}"][data-state="live"]`);
    await second.waitForSelector(`.msg[data-topic="${other}"][data-key="marker"]`);
  } finally {
    await second.close();
  }
});

// kws serve stopped (SIGTERM) and started again on the same port with a
// fresh embedded broker, whose offsets start over at 0; -t creates the topic
// the page resubscribes to.
async function restartServer(topics) {
  const old = ctx.server;
  if (old.exitCode === null && old.signalCode === null) {
    const exited = new Promise((resolve) => old.once("exit", resolve));
    old.kill("SIGTERM");
    let timer;
    await Promise.race([exited, new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("kws serve did not exit within 15 s of SIGTERM")), 15_000);
    })]).finally(() => clearTimeout(timer));
  }
  const port = new URL(ctx.pageUrl).port;
  ctx.server = spawnDaemon(["serve", "--listen", `127.0.0.1:${port}`, "--broker-listen", "127.0.0.1:0",
                            ...topics.flatMap((t) => ["-t", t])]);
  const hs = await readHandshake(ctx.server, ["URL", "BROKERS"], 30_000);
  if (hs.URL.replace(/^ws:/, "http:") !== ctx.pageUrl) throw new Error(`restarted on ${hs.URL}, not ${ctx.pageUrl}`);
  ctx.brokers = hs.BROKERS;
}

// Waits until the page is on a socket other than the one it had when
// forgetSocket ran, and its subscription to `other` is live on it.
const forgetSocket = (page) => page.evaluate(() => { window.oldSocket = window.kwsDemo.socket; });
const resubscribed = (page) => page.waitForFunction((t) => {
  const s = window.kwsDemo.socket;
  return s && s !== window.oldSocket && window.kwsDemo.subs.get(t)?.state === "live";
}, other);

// Each message of `other` with one of these keys is on the page exactly once.
async function shownOnce(page, keys) {
  const counts = await page.evaluate((t) => {
    const n = {};
    for (const e of document.querySelectorAll(`.msg[data-topic="${t}"]`)) n[e.dataset.key] = (n[e.dataset.key] || 0) + 1;
    return n;
  }, other);
  const wrong = keys.filter((k) => counts[k] !== 1);
  if (wrong.length) throw new Error(`not shown exactly once: ${wrong.join(", ")}; shown: ${JSON.stringify(counts)}`);
}

step("after kws serve restarts on a fresh broker whose log already passed the offsets shown, its messages show", async () => {
  const { page } = ctx;
  // The page has shown offsets 0 and 1 of `other`. Its reconnect is held
  // back until the new broker has three messages (offsets 0-2): the
  // `subscribed` reply then reports an end above what the page saw, and
  // only offset 1 itself, a different message now, tells the logs apart.
  await page.evaluate(() => {
    window.realWebSocket = window.WebSocket;
    window.WebSocket = function HeldBack() { throw new Error("reconnect held back by the test"); };
  });
  await forgetSocket(page);
  await restartServer([other]);
  await page.waitForSelector('#status[data-state="waiting"]');
  for (let i = 0; i < 3; i++) await kws(["send", "-b", ctx.brokers, "-k", `epoch2-${i}`, other, `second broker ${i}`]);
  await page.evaluate(() => { window.WebSocket = window.realWebSocket; });
  await retryNow(page);
  await resubscribed(page);
  for (let i = 0; i < 3; i++) await page.waitForSelector(`.msg[data-topic="${other}"][data-key="epoch2-${i}"]`);
  await shownOnce(page, ["marker", "epoch2-0", "epoch2-1", "epoch2-2"]);
  // The bridge could not tell (its reply said recovered); the page did, and says so.
  await page.waitForSelector(`.notice.bad >> text=${other} partition 0: the offsets name other messages than before`);
  await page.waitForSelector(`.chip[data-topic="${other}"][data-resumed="new log"]`);
});

step("after another restart, with nothing produced before the page is back, a new message at offset 0 shows", async () => {
  const { page } = ctx;
  await forgetSocket(page);
  await restartServer([other]);
  await resubscribed(page);
  await kws(["send", "-b", ctx.brokers, "-k", "epoch3-0", other, "third broker"]);
  const card = await page.waitForSelector(`.msg[data-topic="${other}"][data-key="epoch3-0"]`);
  const offset = await card.evaluate((e) => e.dataset.offset);
  if (offset !== "0") throw new Error(`expected offset 0 on a fresh broker, got ${offset}`);
  // The bridge's reply said reset (the page's position is past the new log's end), and the page shows it.
  await page.waitForSelector(
    `.notice.bad >> text=${other} partition 0: its offsets started over (the log now ends at 0, the page was at 2`);
  await page.waitForSelector(`.chip[data-topic="${other}"][data-resumed="log started over"]`);
});

step("a plain reconnect to the same broker after that shows nothing twice", async () => {
  const { page } = ctx;
  await forgetSocket(page);
  await page.evaluate(() => window.kwsDemo.socket.close());
  await resubscribed(page);
  await kws(["send", "-b", ctx.brokers, "-k", "epoch3-1", other, "third broker, again"]);
  await page.waitForSelector(`.msg[data-topic="${other}"][data-key="epoch3-1"]`);
  await shownOnce(page, ["marker", "epoch2-0", "epoch2-1", "epoch2-2", "epoch3-0", "epoch3-1"]);
  await page.waitForSelector(`.chip[data-topic="${other}"][data-resumed="resumed, no gap"]`);
});

// Chromium's own EventSource against /v2/sse, on a kws serve in front of a
// separate kws broker, so the data outlives the bridge: the bridge is
// restarted on the same port, the browser reconnects by itself (retry:
// 1000) and sends Last-Event-ID, and the stream goes on with no gap and no
// duplicate.
step("Chromium's EventSource reads /v2/sse, and resumes with Last-Event-ID after the bridge restarts", async () => {
  const broker = spawnDaemon(["broker", "--listen", "127.0.0.1:0"]);
  const { BROKERS } = await readHandshake(broker, ["BROKERS"], 30_000);
  const sseTopic = `${topic}-sse`;
  for (let i = 0; i < 3; i++) await kws(["send", "-b", BROKERS, "-k", `sse-${i}`, sseTopic, `{"n":${i}}`]);
  const serveArgs = (listen) => ["serve", "-b", BROKERS, "--listen", listen];
  ctx.server = spawnDaemon(serveArgs("127.0.0.1:0"));
  const hs = await readHandshake(ctx.server, ["URL"], 30_000);
  const url = hs.URL.replace(/^ws:/, "http:");
  const page = await ctx.browser.newPage();
  try {
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on("pageerror", (e) => { ctx.consoleLines.push(`pageerror (sse): ${e.message}`); ctx.pageError ??= e; });
    await page.goto(url);
    await page.evaluate((t) => {
      const got = { messages: [], ids: [], subscribed: [], errors: 0, opens: 0 };
      window.sse = got;
      const es = new EventSource(`/v2/sse?topics=${encodeURIComponent(t)}&offset=earliest`);
      window.es = es;
      es.onopen = () => { got.opens++; };
      es.onerror = () => { got.errors++; };
      es.onmessage = (e) => { got.messages.push(JSON.parse(e.data)); got.ids.push(e.lastEventId); };
      es.addEventListener("subscribed", (e) => got.subscribed.push(JSON.parse(e.data)));
    }, sseTopic);
    await page.waitForFunction(() => window.sse.messages.length >= 3 && window.sse.subscribed.length >= 1);
    const first = await page.evaluate(() => window.sse);
    if (first.subscribed[0].topic !== sseTopic || "recovered" in first.subscribed[0]) {
      throw new Error(`the first subscribed event: ${JSON.stringify(first.subscribed[0])}`);
    }
    const keys = first.messages.map((m) => m.key).join(",");
    if (keys !== "sse-0,sse-1,sse-2") throw new Error(`EventSource received keys ${keys}`);
    if (first.messages[2].message !== '{"n":2}' || typeof first.messages[2].offset !== "number") {
      throw new Error(`not a kws envelope: ${JSON.stringify(first.messages[2])}`);
    }

    // The bridge goes away; three messages are produced meanwhile; a new
    // bridge on the same port, same broker.
    const old = ctx.server;
    const exited = new Promise((resolve) => old.once("exit", resolve));
    old.kill("SIGTERM");
    let timer;
    await Promise.race([exited, new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("kws serve did not exit within 15 s of SIGTERM")), 15_000);
    })]).finally(() => clearTimeout(timer));
    for (let i = 3; i < 6; i++) await kws(["send", "-b", BROKERS, "-k", `sse-${i}`, sseTopic, `{"n":${i}}`]);
    ctx.server = spawnDaemon(serveArgs(`127.0.0.1:${new URL(url).port}`));
    await readHandshake(ctx.server, ["URL"], 30_000);
    await page.waitForFunction(() => window.sse.subscribed.length >= 2 && window.sse.messages.length >= 6, null,
                               { timeout: 30_000 });
    await page.waitForTimeout(500); // a duplicate would come right behind
    const got = await page.evaluate(() => { window.es.close(); return window.sse; });
    const again = got.subscribed[1];
    // recovered is only in the answer to a resume: the browser sent Last-Event-ID by itself.
    if (again.recovered !== true) throw new Error(`after the reconnect, subscribed says ${JSON.stringify(again)}`);
    const seen = got.messages.map((m) => `${m.partition}/${m.offset}`);
    const want = (await kws(["tail", "-b", BROKERS, "-o", "beginning", "-e", "-J", sseTopic])).trim().split("\n")
      .map((l) => JSON.parse(l)).map((m) => `${m.partition}/${m.offset}`);
    if (JSON.stringify([...seen].sort()) !== JSON.stringify([...want].sort())) {
      throw new Error(`EventSource received ${JSON.stringify(seen)}, Kafka holds ${JSON.stringify(want)}`);
    }
    if (got.opens < 2) throw new Error(`EventSource opened ${got.opens} times, expected a reconnect`);
  } finally {
    await page.close();
  }
});

step("with --tls-cert and --tls-key the page loads from https:// and talks to Kafka over wss://", async () => {
  const dir = fs.mkdtempSync(path.join(scratch, "tls-"));
  await new Promise((resolve, reject) => execFile("openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2",
     "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
    { cwd: dir }, (err, _out, errText) => (err ? reject(new Error(`openssl: ${errText}`)) : resolve())));
  const server = spawnDaemon(["serve", "--listen", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0",
                              "--tls-cert", path.join(dir, "cert.pem"), "--tls-key", path.join(dir, "key.pem")]);
  ctx.server = server;  // its stderr is shown on failure
  const hs = await readHandshake(server, ["URL", "BROKERS"], 30_000);
  if (!/^wss:\/\/127\.0\.0\.1:\d+\/$/.test(hs.URL)) throw new Error(`unexpected URL= line: ${hs.URL}`);
  // The certificate is self-signed: this browser is told to accept it, which
  // tests kws's TLS, not the browser's trust store.
  const browser = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(scratch, "chromium-tls-")), {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-quic", "--no-first-run"],
    timeout: 60_000,
  });
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on("pageerror", (e) => { ctx.consoleLines.push(`pageerror (https): ${e.message}`); ctx.pageError ??= e; });
    const sockets = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    const resp = await page.goto(hs.URL.replace(/^wss:/, "https:"));
    if (!resp || resp.status() !== 200) throw new Error(`GET / over https answered ${resp && resp.status()}`);
    await page.waitForSelector('#status[data-state="open"]');
    if (!sockets[0] || !sockets[0].startsWith("wss://")) throw new Error(`the page connected to ${sockets[0]}`);
    const tlsTopic = `${topic}-tls`;
    await kws(["send", "-b", hs.BROKERS, "-k", "over-tls", tlsTopic, "sent before the page subscribed"]);
    await page.fill("#sub-topics", tlsTopic);
    await page.selectOption("#sub-mode", "earliest");
    await page.click("#sub-btn");
    const card = await page.waitForSelector(`.msg[data-topic="${tlsTopic}"][data-key="over-tls"]`);
    const value = await card.$eval(".value", (e) => e.textContent);
    if (value !== "sent before the page subscribed") throw new Error(`over wss:// the message shows ${JSON.stringify(value)}`);
    await page.fill("#send-topic", tlsTopic);
    await page.fill("#send-key", "from-page-tls");
    await page.fill("#send-value", "produced over wss");
    await page.click("#send-btn");
    await page.waitForSelector('.result[data-state="ack"]');
    await page.waitForSelector(`.msg[data-topic="${tlsTopic}"][data-key="from-page-tls"]`);
  } finally {
    await browser.close().catch(() => {});
  }
});

step("no script error on the page, and a screenshot", async () => {
  if (ctx.pageError) throw ctx.pageError;
  const file = path.join(SHOT_DIR, "demo_page.png");
  await ctx.page.screenshot({ path: file });
  console.log(`screenshot: ${file}`);
});

// ---- run -----------------------------------------------------------------------
let passed = 0, failed = 0;
for (const s of steps) {
  const started = Date.now();
  try {
    await s.fn();
    passed++;
    console.log(`ok ${passed} - ${s.name} (${Date.now() - started} ms)`);
  } catch (err) {
    failed++;
    console.log(`not ok ${passed + 1} - ${s.name}\n${String(err && err.stack || err).replace(/^/gm, "  ")}`);
    if (ctx.page) {
      const file = path.join(SHOT_DIR, "demo_page-failure.png");
      await ctx.page.screenshot({ path: file }).then(() => console.log(`failure screenshot: ${file}`), () => {});
    }
    if (ctx.server) console.log(`--- kws serve stderr ---\n${ctx.server.stderrText}`);
    if (ctx.consoleLines.length) console.log(`--- page console ---\n${ctx.consoleLines.join("\n")}`);
    break;
  }
}
const notRun = steps.length - passed - failed;
if (ctx.browser) await ctx.browser.close().catch(() => {});
if (notRun) console.log(`(${notRun} later step${notRun === 1 ? "" : "s"} not run after the failure)`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

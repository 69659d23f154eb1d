// Browser test: the bridge's demo page in Debian's Chromium (playwright-core), against a real
// bridge and broker. Subscribes through the page, publishes through the page, sees records
// produced by the test, restarts the page's bridge (same config and port) while records keep
// being produced through a second bridge, and checks that the page shows every record exactly
// once. Then switches the page to Server-Sent Events (records shown; the bridge restarted and the
// streams resumed with Last-Event-ID, every record once) and to STOMP (records shown, a SEND
// with its RECEIPT, a refused SEND's ERROR and the resume after it). Then, on a bridge with
// auth.mode: jwt: the token field, one session per user across two tabs (the "replaced" banner,
// no reconnect, taking the session back), in-band refresh, and STOMP (passcode: a bad one's
// ERROR, a good one) and SSE (access_token) with a token. Saves screenshots to
// tests/browser/artifacts/ (demo.png, demo-sse.png, demo-stomp.png, demo-jwt.png; failure.png
// when it fails).
//
//   KAFKA_BOOTSTRAP   broker (required)
//   BRIDGE_BIN        bridge binary (default $CARGO_TARGET_DIR or target, then debug/kafka-ws-bridge, from the repo root)
//   CHROMIUM          browser binary (default /usr/bin/chromium)
//   KAFKA_WS_BRIDGE_CLIENTS_DIR   when set, the bridge serves the page from disk (development);
//                     leave it unset to test the page embedded in the binary
//   HEADED=1          show the browser (needs a display)
//
// Run: node tests/browser/run.mjs   (after tests/browser/setup.sh)

import { mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { WebSocket } from "ws";

import { connect } from "../../clients/js/kafka-ws-bridge.js";
import {
  bootstrap,
  createTopics,
  freePort,
  makeConfig,
  mintJwt,
  nextEvent,
  sleep,
  startBridge,
  unique,
  waitFor,
  writeConfig,
} from "../../clients/js/test/harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = join(here, "artifacts");
const screenshot = join(artifacts, "demo.png");
const screenshotJwt = join(artifacts, "demo-jwt.png");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const started = Date.now();

function step(text) {
  console.log(`  ✓ ${text} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

const cleanup = [];

/** Collects uncaught exceptions and failed requests (but the favicon) of a page. */
function watchPage(p, errors) {
  p.on("pageerror", (e) => errors.push(e));
  p.on("response", (r) => {
    if (r.status() >= 400 && !r.url().endsWith("/favicon.ico")) errors.push(new Error(`HTTP ${r.status()} for ${r.url()}`));
  });
}
let lastPage = null; // for a screenshot when the test fails


/** The bank scenario: subscribe, publish, records from elsewhere, a bridge restart. */
async function bankScenario(browser) {
  // The bank scenario of bridge.yaml on fresh topics, plus `set-balance` so the test can write
  // balances (in bridge.yaml a backend does).
  const transfersTopic = unique("browser-transfers");
  const balancesTopic = unique("browser-balances");
  const bank = {
    channels: [
      {
        name: "balances",
        topic: balancesTopic,
        format: "json",
        key: { from: "record_key" },
        deliver: "by_key",
        subscribe: { allow: "anonymous", keys: "any" },
        snapshot: true,
        history: 20,
      },
      {
        name: "transfers",
        topic: transfersTopic,
        format: "json",
        deliver: "broadcast",
        subscribe: { allow: "anonymous" },
        history: 100,
        on_slow_client: "drop_oldest",
      },
    ],
    inbound: [
      { channel: "new-transfers", topic: transfersTopic, key: { pointer: "/from" }, allow: "anonymous" },
      { channel: "set-balance", topic: balancesTopic, key: { pointer: "/customer" }, allow: "anonymous" },
    ],
  };
  const port = await freePort();
  const pageConfig = writeConfig(makeConfig({ port, instanceId: unique("browser-page"), ...bank }));
  await createTopics(pageConfig);
  let pageBridge = await startBridge(pageConfig);
  cleanup.push(() => pageBridge.stop());
  // A second bridge produces, so that records keep coming while the page's bridge is down.
  const producerBridge = await startBridge(writeConfig(makeConfig({ instanceId: unique("browser-producer"), ...bank })));
  cleanup.push(() => producerBridge.stop());
  step(`bridges up: page at ${pageBridge.http}/, producer at ${producerBridge.ws}`);

  const producer = connect(producerBridge.ws, { WebSocket });
  cleanup.push(() => producer.close());
  await nextEvent(producer, "open");
  // A watcher on the page's bridge tells when it has consumed the first balance (snapshot).
  const watcher = connect(pageBridge.ws, { WebSocket });
  cleanup.push(() => watcher.close());
  const watched = [];
  await watcher.subscribe("balances", { key: "C-1", onMessage: (d) => watched.push(d) }).ready;
  await producer.publish("set-balance", { customer: "C-1", balance: 100, n: 0 });
  await waitFor(() => watched.length === 1, { what: "the bridge to consume the first balance" });
  await watcher.close();

  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  lastPage = page;
  const pageErrors = [];
  watchPage(page, pageErrors);
  page.setDefaultTimeout(20000);

  await page.goto(`${pageBridge.http}/`);
  if (!(await page.$("#channels"))) {
    throw new Error(
      `${pageBridge.http}/ is not the demo page (${JSON.stringify((await page.textContent("body")).slice(0, 80))}): ` +
        "a binary built before clients/demo/index.html was written? Rebuild, or set " +
        "KAFKA_WS_BRIDGE_CLIENTS_DIR=<repo>/clients to serve the files from disk",
    );
  }
  await page.waitForSelector("#state[data-state=open]");
  step(`page loaded with browser ${browser.version()}, connected`);

  // Subscribe to transfers and to balances of C-1.
  await page.click("li[data-channel=transfers] button[data-role=subscribe]");
  await page.fill("li[data-channel=balances] input[data-role=key]", "C-1");
  await page.click("li[data-channel=balances] button[data-role=subscribe]");
  const transfersCard = "article[data-channel=transfers]";
  const balancesCard = 'article[data-channel=balances][data-key="C-1"]';
  await page.waitForSelector(`${transfersCard} [data-role=status][data-status=live]`);
  await page.waitForSelector(`${balancesCard} [data-role=status][data-status=live]`);
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent.includes('"balance":100'),
    `${balancesCard} [data-role=current]`,
  );
  step("subscribed to transfers and balances/C-1; the balance snapshot is shown");

  // Publish through the page and see its ack, then the record on the transfers feed.
  await page.selectOption("#publish-channel", "new-transfers");
  await page.fill("#publish-data", JSON.stringify({ from: "C-1", to: "C-2", amount: 25, n: "page" }));
  await page.click("#publish");
  const ackText = await page.textContent("#publish-results li.ok");
  const ackMatch = /ack new-transfers → (\S+) partition (\d+) offset (\d+)/.exec(ackText);
  assert.ok(ackMatch, `an ack line, got: ${ackText}`);
  assert.equal(ackMatch[1], transfersTopic);
  const pageRecord = `${ackMatch[2]}:${ackMatch[3]}`;
  await page.waitForSelector(
    `${transfersCard} li[data-partition="${ackMatch[2]}"][data-offset="${ackMatch[3]}"]`,
  );
  step(`published through the page: ack at partition ${ackMatch[2]} offset ${ackMatch[3]}, shown on the feed`);

  // A record produced by the test (through the other bridge) appears on the page.
  const acks = []; // partition:offset of every transfer the test produced
  const balanceAcks = [];
  let n = 1;
  async function produceOne() {
    const i = n++;
    const [t, b] = await Promise.all([
      producer.publish("new-transfers", { from: `A-${i % 4}`, to: "C-1", amount: i, n: i }),
      producer.publish("set-balance", { customer: "C-1", balance: 100 + i, n: i }),
    ]);
    acks.push(`${t.partition}:${t.offset}`);
    balanceAcks.push(`${b.partition}:${b.offset}`);
  }
  await produceOne();
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes('"n":1}')),
    `${transfersCard} [data-role=data]`,
  );
  step("a record produced by the test appears on the page");

  const rows = (card) =>
    page.$$eval(`${card} [data-role=messages] li`, (lis) => lis.map((li) => `${li.dataset.partition}:${li.dataset.offset}`));

  // Restart the page's bridge on the same port while records keep being produced.
  let producing = true;
  const loop = (async () => {
    while (producing) {
      await produceOne();
      await sleep(40);
    }
  })();
  // Records on every partition the feed uses before the restart, so that the page resumes each
  // from its own position (clients/js/test/resume.test.mjs covers partitions not seen yet).
  await waitFor(
    async () => {
      const shown = new Set((await rows(transfersCard)).map((r) => r.split(":")[0]));
      return acks.length >= 8 && acks.every((a) => shown.has(a.split(":")[0]));
    },
    { what: "records on every partition" },
  );
  const before = acks.length;
  await pageBridge.stop(); // SIGTERM: the page's session is closed with 1001
  await page.waitForSelector("#state:not([data-state=open])");
  step(`page's bridge stopped after ${before} test records; the page shows "${await page.textContent("#state")}"`);
  await sleep(1500);
  pageBridge = await startBridge(pageConfig);
  await page.waitForSelector("#state[data-state=open]", { timeout: 30000 });
  const during = acks.length - before;
  step(`bridge restarted on port ${port}; the page reconnected (${during} records produced meanwhile)`);
  await sleep(700);
  producing = false;
  await loop;
  assert.ok(during >= 5, `records were produced while the bridge was down (${during})`);

  // Every record exactly once: the page's rows against the acks.
  const expectedTransfers = [pageRecord, ...acks].sort();
  const expectedBalances = balanceAcks.sort();
  try {
    await waitFor(
      async () => (await rows(transfersCard)).length >= expectedTransfers.length &&
        (await rows(balancesCard)).length >= expectedBalances.length,
      { timeoutMs: 20000, what: "the page to show every record" },
    );
  } catch (e) {
    const got = new Set(await rows(transfersCard));
    throw new Error(`${e.message}; transfers missing: ${expectedTransfers.filter((r) => !got.has(r)).join(" ")}`);
  }
  await sleep(300); // late duplicates would arrive meanwhile
  assert.deepEqual((await rows(transfersCard)).sort(), expectedTransfers, "transfers: every record once");
  assert.deepEqual((await rows(balancesCard)).sort(), expectedBalances, "balances: every record once");
  const current = await page.textContent(`${balancesCard} [data-role=current]`);
  assert.ok(current.includes(`"balance":${100 + n - 1}`), `current balance is the last one: ${current}`);
  const log = await page.textContent("#log");
  assert.match(log, /reconnected/);
  assert.doesNotMatch(log, /gap on/);
  step(`the page shows all ${expectedTransfers.length} transfers and ${expectedBalances.length} balances exactly once, no gap`);

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`==> screenshot: ${relative(process.cwd(), screenshot) || screenshot} (${screenshot})`);

  // ---- the transport switch: the same page and bridges over SSE, then STOMP ------------------

  /** Subscribes to transfers and balances/C-1 on the page and waits for both and the snapshot. */
  async function subscribeBoth() {
    assert.equal(await page.$$eval("article.sub", (a) => a.length), 0, "cards start over on a new transport");
    await page.click("li[data-channel=transfers] button[data-role=subscribe]");
    await page.fill("li[data-channel=balances] input[data-role=key]", "C-1");
    await page.click("li[data-channel=balances] button[data-role=subscribe]");
    await page.waitForSelector(`${transfersCard} [data-role=status][data-status=live]`);
    await page.waitForSelector(`${balancesCard} [data-role=status][data-status=live]`);
    const last = `"balance":${100 + n - 1}`;
    await page.waitForFunction(
      ([sel, text]) => document.querySelector(sel)?.textContent.includes(text),
      [`${balancesCard} [data-role=current]`, last],
    );
  }
  /** Produces `count` records and waits for the page to show them; returns their positions. */
  async function produceAndSee(count) {
    const from = acks.length;
    for (let i = 0; i < count; i++) await produceOne();
    const want = acks.slice(from);
    await waitFor(async () => {
      const shown = new Set(await rows(transfersCard));
      return want.every((a) => shown.has(a));
    }, { what: "the page to show the records produced" });
    return want;
  }

  await page.selectOption("#transport", "sse");
  await page.waitForSelector("#state[data-state=open]");
  assert.ok(await page.isDisabled("#publish"), "no publish over SSE");
  assert.match(await page.textContent("#publish-note"), /one-way/);
  await subscribeBoth();
  const sseFrom = acks.length;
  const sseBalancesFrom = balanceAcks.length;
  await produceAndSee(3);
  assert.match(await page.textContent(`${transfersCard} [data-role=event-id]`), /^Last-Event-ID \d+:\d+/);
  step("SSE: switched; two EventSource streams, the balance snapshot, records produced to Kafka shown");

  // Cut the streams (restart the page's bridge) while records keep coming: EventSource
  // reconnects by itself and resumes with Last-Event-ID, no gap, no duplicate.
  producing = true;
  const sseLoop = (async () => {
    while (producing) {
      await produceOne();
      await sleep(40);
    }
  })();
  await sleep(300);
  await pageBridge.stop();
  await page.waitForSelector(`${transfersCard} [data-role=status][data-status=resuming]`);
  await sleep(1000);
  pageBridge = await startBridge(pageConfig);
  await page.waitForSelector(`${transfersCard} [data-role=status][data-status=live]`, { timeout: 30000 });
  await page.waitForSelector(`${balancesCard} [data-role=status][data-status=live]`, { timeout: 30000 });
  await sleep(500);
  producing = false;
  await sseLoop;
  const sseTransfers = acks.slice(sseFrom).sort();
  const sseBalances = balanceAcks.slice(sseBalancesFrom).sort();
  await waitFor(
    async () => (await rows(transfersCard)).length >= sseTransfers.length &&
      (await rows(balancesCard)).length >= sseBalances.length,
    { timeoutMs: 20000, what: "the SSE page to show every record" },
  );
  await sleep(300);
  assert.deepEqual((await rows(transfersCard)).sort(), sseTransfers, "SSE transfers: every record once");
  assert.deepEqual((await rows(balancesCard)).sort(), sseBalances, "SSE balances: every record once");
  assert.match(await page.textContent("#log"), /SSE transfers: reconnected with Last-Event-ID \d+:\d+/);
  step(`SSE: bridge restarted; the streams resumed with Last-Event-ID, all ${sseTransfers.length} transfers once`);
  await page.screenshot({ path: join(artifacts, "demo-sse.png"), fullPage: true });

  await page.selectOption("#transport", "stomp");
  await page.waitForSelector("#state[data-state=open]");
  assert.ok(!(await page.isDisabled("#publish")), "publish over STOMP");
  assert.match(await page.textContent("#log"), /connected: session/);
  await subscribeBoth();
  const stompFrom = acks.length;
  await produceAndSee(3);
  step("STOMP: switched, CONNECTED; SUBSCRIBE receipts, the balance snapshot, records produced to Kafka shown");

  await page.selectOption("#publish-channel", "new-transfers");
  await page.fill("#publish-data", JSON.stringify({ from: "C-1", to: "C-3", amount: 5, n: "stomp-page" }));
  await page.click("#publish");
  await page.waitForFunction(() => /receipt send-\d+: SEND \/app\/new-transfers written to Kafka/.test(
    document.querySelector("#publish-results li.ok")?.textContent ?? ""));
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes('"n":"stomp-page"')),
    `${transfersCard} [data-role=data]`,
  );
  step("STOMP: SEND through the page got its RECEIPT, and the record arrived on the feed");

  // A refused SEND (a bridge header) gets an ERROR, shown; the bridge closes, the page
  // reconnects and resubscribes with `resume`: records keep arriving exactly once.
  await page.fill("#publish-headers", JSON.stringify({ "bridge-user": "mallory" }));
  await page.click("#publish");
  await page.waitForSelector("#publish-results li.bad");
  const refused = await page.textContent("#publish-results li.bad");
  assert.match(refused, /error \w+: .*bridge-user/, "the ERROR frame's code and message");
  await page.fill("#publish-headers", "");
  await page.waitForFunction(() => /reconnected: session/.test(document.querySelector("#log").textContent));
  await page.waitForSelector("#state[data-state=open]");
  await page.waitForSelector(`${transfersCard} [data-role=status][data-status=live]`);
  await produceAndSee(2);
  const stompRows = await rows(transfersCard);
  assert.equal(new Set(stompRows).size, stompRows.length, "STOMP: no duplicate after the resume");
  assert.deepEqual(stompRows.filter((r) => acks.includes(r)).sort(), acks.slice(stompFrom).sort(),
    "STOMP: every record produced since the switch, once");
  step(`STOMP: a refused SEND showed "${refused.trim().slice(10, 60)}…"; reconnected, resumed with no gap or duplicate`);
  await page.screenshot({ path: join(artifacts, "demo-stomp.png"), fullPage: true });
  assert.deepEqual(pageErrors, [], "no uncaught exception in the page");
}


/** auth.mode: jwt — the token field, one session per user (the replaced banner, take over). */
async function jwtScenario(browser) {
  const secret = "browser-test-secret-0123456789-abcdefgh";
  const balancesTopic = unique("browser-jwt-balances");
  const config = writeConfig(
    makeConfig({
      instanceId: unique("browser-jwt"),
      auth: {
        mode: "jwt",
        jwt: { algorithms: ["HS256"], secret, leeway_seconds: 0 },
        max_sessions_per_user: 1,
        refresh_warning_s: 1, // the in-band refresh step uses 3-second tokens
      },
      channels: [
        {
          name: "balances",
          topic: balancesTopic,
          key: { from: "record_key" },
          deliver: "by_key",
          subscribe: { allow: "authenticated", keys: "own" },
          snapshot: true,
          history: 20,
        },
      ],
      inbound: [{ channel: "set-balance", topic: balancesTopic, key: { pointer: "/customer" }, allow: "authenticated" }],
    }),
  );
  await createTopics(config);
  const bridge = await startBridge(config);
  cleanup.push(() => bridge.stop());
  const token = mintJwt({ sub: "C-9", exp: Math.floor(Date.now() / 1000) + 600 }, secret);
  const errors = [];

  async function openTab() {
    const tab = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    lastPage = tab;
    watchPage(tab, errors);
    tab.setDefaultTimeout(20000);
    await tab.goto(`${bridge.http}/`);
    await tab.waitForSelector("#auth:not([hidden])");
    if ((await tab.getAttribute("#state", "data-state")) !== "open") {
      await tab.fill("#token", token);
      await tab.click("#connect");
    }
    await tab.waitForSelector("#state[data-state=open]");
    return tab;
  }

  const first = await openTab();
  assert.match(await first.textContent("#session"), /user C-9/);
  await first.click("li[data-channel=balances] button[data-role=subscribe]"); // own key
  const card = 'article[data-channel=balances][data-key=""]';
  await first.waitForSelector(`${card} [data-role=status][data-status=live]`);
  await first.selectOption("#publish-channel", "set-balance");
  await first.fill("#publish-data", JSON.stringify({ customer: "C-9", balance: 7 }));
  await first.click("#publish");
  await first.waitForSelector("#publish-results li.ok");
  await first.waitForFunction((sel) => document.querySelector(sel)?.textContent.includes('"balance":7'), `${card} [data-role=current]`);
  step("jwt: token field, connected as C-9, own balance subscribed, published and shown");

  const second = await openTab();
  await first.waitForSelector("#replaced:not([hidden])");
  await first.waitForSelector("#state[data-state=closed]");
  await sleep(1000);
  assert.equal(await first.getAttribute("#state", "data-state"), "closed", "no reconnect after session_replaced");
  step("jwt: a second tab of the same user replaced the first, which shows the banner and stays closed");

  await first.click("#takeover");
  await first.waitForSelector("#state[data-state=open]");
  await first.waitForSelector(`${card} [data-role=status][data-status=live]`);
  await second.waitForSelector("#replaced:not([hidden])");
  step("jwt: the first tab took the session back; the second shows the banner");

  // In-band refresh: one session across three 3-second tokens, each put in the token field
  // (which the page's getToken reads) before the bridge's token_expiring.
  const shortToken = () => mintJwt({ sub: "C-7", exp: Math.floor(Date.now() / 1000) + 3 }, secret);
  const third = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  watchPage(third, errors);
  third.setDefaultTimeout(20000);
  await third.goto(`${bridge.http}/`);
  await third.waitForSelector("#auth:not([hidden])");
  const firstToken = shortToken();
  const firstExpMs = JSON.parse(Buffer.from(firstToken.split(".")[1], "base64url").toString()).exp * 1000;
  await third.fill("#token", firstToken);
  if ((await third.getAttribute("#state", "data-state")) !== "open") await third.click("#connect");
  await third.waitForSelector("#state[data-state=open]");
  await third.evaluate(() => {
    window.kwbCounts = { opens: 0, refreshed: 0 };
    window.kwbClient.on("open", () => window.kwbCounts.opens++);
    window.kwbClient.on("token_refreshed", () => window.kwbCounts.refreshed++);
  });
  // At least three refreshes, and on until the first token's exp is well past.
  for (let i = 1; i <= 3 || Date.now() <= firstExpMs + 500; i++) {
    await third.fill("#token", shortToken());
    await third.waitForFunction((n) => window.kwbCounts.refreshed >= n, i);
  }
  const counts = await third.evaluate(() => window.kwbCounts);
  assert.ok(Date.now() > firstExpMs, "the session outlived its first token");
  assert.equal(counts.opens, 0, "no reconnect during three token lifetimes");
  assert.equal(await third.getAttribute("#state", "data-state"), "open");
  await third.waitForSelector("#token-life:not([hidden])");
  assert.match(await third.textContent("#token-life"), /Token valid for \d+ s more · refreshed in-band [3-9]×/);
  step("jwt: one session across three 3-second tokens, refreshed in-band (no reconnect), lifetime shown");
  await third.close();

  // STOMP and SSE with a token: the passcode and access_token carry it; a bad one gets an ERROR.
  const fourth = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  lastPage = fourth;
  watchPage(fourth, errors);
  fourth.setDefaultTimeout(20000);
  await fourth.goto(`${bridge.http}/?transport=stomp`);
  await fourth.waitForSelector("#auth:not([hidden])");
  await fourth.fill("#token", mintJwt({ sub: "C-8", exp: Math.floor(Date.now() / 1000) + 600 }, "not-the-secret-0123456789-abcdefghij"));
  await fourth.click("#connect");
  await fourth.waitForFunction(() => /error unauthorized/.test(document.querySelector("#log").textContent));
  await fourth.waitForSelector("#state[data-state=closed]");
  await fourth.fill("#token", mintJwt({ sub: "C-8", exp: Math.floor(Date.now() / 1000) + 600 }, secret));
  await fourth.click("#connect");
  await fourth.waitForSelector("#state[data-state=open]");
  assert.match(await fourth.textContent("#session"), /user C-8/);
  await fourth.click("li[data-channel=balances] button[data-role=subscribe]"); // own key
  await fourth.waitForSelector(`${card} [data-role=status][data-status=live]`);
  await fourth.selectOption("#publish-channel", "set-balance");
  await fourth.fill("#publish-data", JSON.stringify({ customer: "C-8", balance: 8 }));
  await fourth.click("#publish");
  await fourth.waitForSelector("#publish-results li.ok");
  await fourth.waitForFunction((sel) => document.querySelector(sel)?.textContent.includes('"balance":8'), `${card} [data-role=current]`);
  step("jwt: STOMP refused a bad passcode with an ERROR (shown, no retry); with a good one, own balance and a SEND");
  await fourth.selectOption("#transport", "sse");
  await fourth.click("li[data-channel=balances] button[data-role=subscribe]");
  await fourth.waitForSelector(`${card} [data-role=status][data-status=live]`);
  await fourth.waitForFunction((sel) => document.querySelector(sel)?.textContent.includes('"balance":8'), `${card} [data-role=current]`);
  step("jwt: SSE with access_token: own balance's snapshot");
  await fourth.close();

  await first.screenshot({ path: screenshotJwt, fullPage: true });
  assert.deepEqual(errors, [], "no uncaught exception or failed request in the pages");
  console.log(`==> screenshot: ${relative(process.cwd(), screenshotJwt) || screenshotJwt}`);
}

async function main() {
  bootstrap(); // fails with a clear message when KAFKA_BOOTSTRAP is unset
  const served = process.env.KAFKA_WS_BRIDGE_CLIENTS_DIR
    ? `from disk (${process.env.KAFKA_WS_BRIDGE_CLIENTS_DIR})`
    : "embedded in the binary";
  console.log(`==> browser test: demo page ${served}, broker ${process.env.KAFKA_BOOTSTRAP}`);
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: !process.env.HEADED,
    args: [
      ...(process.env.HEADED ? [] : ["--headless"]),
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  cleanup.push(() => browser.close());
  await bankScenario(browser);
  await jwtScenario(browser);
  console.log(`==> browser test passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

let failed = false;
const watchdog = setTimeout(() => {
  console.error("browser test: timed out after 180 s");
  process.exit(1);
}, 180000);
try {
  await main();
} catch (e) {
  failed = true;
  console.error(`browser test FAILED: ${e.stack || e}`);
  if (lastPage) {
    const shot = join(artifacts, "failure.png");
    try {
      mkdirSync(artifacts, { recursive: true });
      await lastPage.screenshot({ path: shot, fullPage: true });
      console.error(`==> screenshot of the failure: ${shot}`);
    } catch {
      // the page may be gone
    }
  }
} finally {
  for (const fn of cleanup.reverse()) {
    try {
      await fn();
    } catch {
      // keep cleaning
    }
  }
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);

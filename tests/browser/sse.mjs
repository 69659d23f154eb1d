// Server-Sent Events in Debian's Chromium (playwright-core): a real `EventSource` against a real
// bridge and broker.
//   1. An EventSource on a broadcast channel (JWT in ?access_token) receives the records produced
//      by the test. The test then restarts the bridge (SIGTERM: the bridge ends the stream) while
//      a second bridge keeps producing; the EventSource reconnects by itself, sends
//      `Last-Event-ID`, and the page ends with every record exactly once, in order.
//   2. A keyed channel with `keys: own`: the user's own key streams (snapshot as `subscribed`);
//      another user's key is answered 403 (EventSource gives up: readyState CLOSED), a missing
//      token 401, an unknown channel 404, a malformed Last-Event-ID 400 — each with a JSON error.
//
//   KAFKA_BOOTSTRAP (required), BRIDGE_BIN, CHROMIUM as for run.mjs.
// Run: node tests/browser/sse.mjs   (after tests/browser/setup.sh)

import assert from "node:assert/strict";
import { WebSocket } from "ws";

import { connect } from "../../clients/js/kafka-ws-bridge.js";
import {
  bootstrap,
  createTopics,
  freePort,
  makeConfig,
  mintJwt,
  nextEvent,
  startBridge,
  unique,
  waitFor,
  writeConfig,
} from "../../clients/js/test/harness.mjs";
import { browserTest, launchChromium } from "./lib.mjs";

const test = browserTest("SSE browser test", 150000);
const { cleanup, step } = test;

/**
 * Every record 0..count-1 exactly once, and per partition in offset order (Kafka orders
 * records per partition only: the topic has several, so the order across them may vary).
 */
function exactlyOnceInPartitionOrder(got, count, lastEventIds = []) {
  const received = got.map((m) => m.n).sort((a, b) => a - b);
  assert.deepEqual(
    received,
    [...Array(count).keys()],
    `every record exactly once; received in this order: ${JSON.stringify(got)}, Last-Event-IDs sent: ${JSON.stringify(lastEventIds)}`,
  );
  const last = {};
  for (const m of got) {
    assert.ok(!(m.p in last) || m.o > last[m.p], `partition ${m.p}: offset ${m.o} after ${last[m.p]}`);
    last[m.p] = m.o;
  }
}

async function main() {
  bootstrap();
  console.log(`==> SSE browser test, broker ${process.env.KAFKA_BOOTSTRAP}`);
  const secret = "sse-test-secret-0123456789-abcdefghij";
  const token = (sub) => mintJwt({ sub, exp: Math.floor(Date.now() / 1000) + 600 }, secret);
  const feedTopic = unique("sse-feed");
  const accountsTopic = unique("sse-accounts");
  const settings = {
    auth: { mode: "jwt", jwt: { algorithms: ["HS256"], secret, leeway_seconds: 0 } },
    channels: [
      { name: "feed", topic: feedTopic, deliver: "broadcast", subscribe: { allow: "authenticated" }, history: 100 },
      {
        name: "accounts",
        topic: accountsTopic,
        key: { from: "record_key" },
        deliver: "by_key",
        subscribe: { allow: "authenticated", keys: "own" },
        snapshot: true,
        history: 10,
      },
    ],
    inbound: [
      { channel: "feed-in", topic: feedTopic, key: "none", allow: "authenticated" },
      { channel: "accounts-in", topic: accountsTopic, key: "user", allow: "authenticated" },
    ],
  };
  const port = await freePort();
  const config = writeConfig(makeConfig({ port, instanceId: unique("sse-page"), ...settings }));
  await createTopics(config);
  let bridge = await startBridge(config);
  cleanup.push(() => bridge.stop());
  const producerBridge = await startBridge(writeConfig(makeConfig({ instanceId: unique("sse-producer"), ...settings })));
  cleanup.push(() => producerBridge.stop());
  const producer = connect(`${producerBridge.ws}?access_token=${token("P-1")}`, { WebSocket });
  cleanup.push(() => producer.close());
  await nextEvent(producer, "open");
  step(`bridges up: page at ${bridge.http}, producer at ${producerBridge.ws}`);

  const browser = await launchChromium();
  cleanup.push(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  const lastEventIds = [];
  page.on("request", async (r) => {
    // allHeaders(): the headers Chromium's network stack sent (headers() lacks Last-Event-ID).
    if (r.url().includes("/sse?")) lastEventIds.push((await r.allHeaders())["last-event-id"] ?? null);
  });
  await page.goto(`${bridge.http}/`);

  // 1. Broadcast channel, cut by a restart, resumed with Last-Event-ID.
  await page.evaluate((url) => {
    window.got = [];
    window.opens = 0;
    window.subscribed = [];
    const source = new EventSource(url);
    window.source = source;
    source.addEventListener("open", () => window.opens++);
    source.addEventListener("subscribed", (e) => window.subscribed.push(JSON.parse(e.data)));
    source.addEventListener("message", (e) => {
      const m = JSON.parse(e.data);
      window.got.push({ n: m.data.n, p: m.partition, o: m.offset, id: e.lastEventId });
    });
  }, `/sse?channel=feed&access_token=${token("C-1")}`);
  await page.waitForFunction(() => window.subscribed.length === 1);
  const N = 20;
  for (let n = 0; n < N; n++) await producer.publish("feed-in", { n });
  await page.waitForFunction((n) => window.got.length >= n, N);
  let got = await page.evaluate(() => window.got);
  exactlyOnceInPartitionOrder(got, N);
  assert.match(got.at(-1).id, /^\d+:\d+(,\d+:\d+)*$/, "message events carry positions as their id");
  step(`EventSource received ${N} records, last id ${got.at(-1).id}`);

  await bridge.stop();
  for (let n = N; n < 2 * N; n++) await producer.publish("feed-in", { n });
  bridge = await startBridge(config);
  for (let n = 2 * N; n < 3 * N; n++) await producer.publish("feed-in", { n });
  await page.waitForFunction((n) => window.got.length >= n, 3 * N, { timeout: 30000 });
  got = await page.evaluate(() => window.got);
  exactlyOnceInPartitionOrder(got, 3 * N, lastEventIds);
  assert.ok((await page.evaluate(() => window.opens)) >= 2, "the EventSource reconnected");
  const resumedWith = lastEventIds.filter((id) => id);
  assert.ok(resumedWith.length >= 1, `a reconnect sent Last-Event-ID (requests: ${JSON.stringify(lastEventIds)})`);
  assert.equal(resumedWith[0], got[N - 1].id, "the reconnect resumed from the last event seen");
  step(`bridge restarted: reconnected with Last-Event-ID ${resumedWith[0]}, ${3 * N} records exactly once`);
  await page.evaluate(() => window.source.close());

  // 2. Keyed channel: own key streams with its snapshot; refusals are HTTP answers.
  await producer.close();
  const owner = connect(`${bridge.ws}?access_token=${token("C-1")}`, { WebSocket });
  cleanup.push(() => owner.close());
  await nextEvent(owner, "open");
  // The owner's WebSocket subscription tells when the bridge has consumed the record.
  const seenByOwner = [];
  await owner.subscribe("accounts", { onMessage: (d) => seenByOwner.push(d) }).ready;
  await owner.publish("accounts-in", { balance: 5 });
  await waitFor(() => seenByOwner.length === 1, { what: "the bridge to consume the balance" });
  const snapshot = await page.evaluate(async (url) => {
    const source = new EventSource(url);
    return await new Promise((resolve) => {
      source.addEventListener("subscribed", (e) => {
        source.close();
        resolve(JSON.parse(e.data));
      });
    });
  }, `/sse?channel=accounts&access_token=${token("C-1")}`);
  assert.equal(snapshot.key, "C-1");
  assert.deepEqual(snapshot.snapshot.data, { balance: 5 });
  step("own key: subscribed event with the snapshot");

  const forbidden = await page.evaluate(async (url) => {
    const source = new EventSource(url);
    return await new Promise((resolve) => {
      source.addEventListener("error", () => resolve(source.readyState));
    });
  }, `/sse?channel=accounts&key=C-2&access_token=${token("C-1")}`);
  assert.equal(forbidden, 2, "EventSource gives up (CLOSED) on a forbidden key");
  const answers = {};
  for (const [name, query, headers, status] of [
    ["forbidden key", `channel=accounts&key=C-2&access_token=${token("C-1")}`, {}, 403],
    ["no token", "channel=feed", {}, 401],
    ["unknown channel", `channel=nope&access_token=${token("C-1")}`, {}, 404],
    ["bad Last-Event-ID", `channel=feed&access_token=${token("C-1")}`, { "Last-Event-ID": "0:x" }, 400],
    ["no channel", `access_token=${token("C-1")}`, {}, 400],
  ]) {
    const response = await fetch(`${bridge.http}/sse?${query}`, { headers });
    const body = await response.json();
    assert.equal(response.status, status, `${name}: ${JSON.stringify(body)}`);
    assert.equal(typeof body.error, "string");
    answers[name] = `${status} ${body.error}`;
  }
  console.log(answers);
  step("refusals: forbidden key 403 (EventSource CLOSED), no token 401, unknown channel 404, bad id 400");

  const metrics = await (await fetch(bridge.metrics)).text();
  assert.match(metrics, /kafka_ws_bridge_sessions_open\{transport="sse"\} \d+/);
  await waitFor(async () => /kafka_ws_bridge_sessions_open\{transport="sse"\} 0\b/.test(await (await fetch(bridge.metrics)).text()), {
    what: "closed streams to be counted out",
  });
  step("sessions_open{transport=\"sse\"} back to 0 once the EventSources closed");
  console.log(`==> SSE browser test passed in ${test.elapsed()} s`);
}

await test.run(main);

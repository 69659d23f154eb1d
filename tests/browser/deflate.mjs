// permessage-deflate in Debian's Chromium (playwright-core): a page's own `WebSocket` (Chromium
// always offers permessage-deflate) against a real bridge and broker.
//   1. The handshake negotiates it: `ws.extensions` names permessage-deflate with both
//      no_context_takeover parameters.
//   2. ~1 KiB JSON records produced to Kafka (by a Node client through a second bridge) reach the
//      page exactly as produced; the bridge's sent_bytes_total shows they went compressed.
//   3. The page publishes a large message, which Chromium sends compressed: the bridge inflates
//      it (inflated_messages_total moves), Kafka acks it, and it comes back to the page intact.
//
//   KAFKA_BOOTSTRAP (required), BRIDGE_BIN, CHROMIUM as for run.mjs.
// Run: node tests/browser/deflate.mjs   (after tests/browser/setup.sh)

import assert from "node:assert/strict";
import { WebSocket } from "ws";

import { connect } from "../../clients/js/kafka-ws-bridge.js";
import {
  bootstrap,
  createTopics,
  makeConfig,
  nextEvent,
  startBridge,
  unique,
  writeConfig,
  metric,
  record,
} from "../../clients/js/test/harness.mjs";
import { browserTest, launchChromium } from "./lib.mjs";

const test = browserTest("permessage-deflate browser test", 120000);
const { cleanup, step } = test;

async function main() {
  bootstrap();
  console.log(`==> permessage-deflate browser test, broker ${process.env.KAFKA_BOOTSTRAP}`);
  const feedTopic = unique("deflate-feed");
  const settings = {
    channels: [{ name: "feed", topic: feedTopic, deliver: "broadcast", subscribe: { allow: "anonymous" } }],
    inbound: [{ channel: "feed-in", topic: feedTopic, key: "none", allow: "anonymous" }],
  };
  const config = writeConfig(makeConfig({ instanceId: unique("deflate-page"), ...settings }));
  await createTopics(config);
  const bridge = await startBridge(config);
  cleanup.push(() => bridge.stop());
  const producerBridge = await startBridge(writeConfig(makeConfig({ instanceId: unique("deflate-producer"), ...settings })));
  cleanup.push(() => producerBridge.stop());
  const producer = connect(producerBridge.ws, { WebSocket });
  cleanup.push(() => producer.close());
  await nextEvent(producer, "open");
  step(`bridges up: page at ${bridge.http}, producer at ${producerBridge.ws}`);

  const browser = await launchChromium();
  cleanup.push(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${bridge.http}/`);

  // 1. Negotiation.
  const extensions = await page.evaluate(async (url) => {
    window.frames_ = [];
    window.texts = 0;
    const ws = new WebSocket(url);
    window.ws = ws;
    ws.onmessage = (e) => {
      window.texts += e.data.length;
      window.frames_.push(JSON.parse(e.data));
    };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("websocket error"));
    });
    return ws.extensions;
  }, bridge.ws);
  assert.match(extensions, /^permessage-deflate\b/, `negotiated: ${extensions}`);
  assert.match(extensions, /server_no_context_takeover/);
  assert.match(extensions, /client_no_context_takeover/);
  step(`ws.extensions = "${extensions}"`);

  await page.evaluate(() => window.ws.send(JSON.stringify({ type: "subscribe", id: "s", channel: "feed" })));
  await page.waitForFunction(() => window.frames_.some((f) => f.type === "subscribed"));

  // 2. ~1 KiB records produced to Kafka.
  const sentBefore = await metric(bridge, "kafka_ws_bridge_sent_bytes_total");
  const textsBefore = await page.evaluate(() => window.texts);
  const N = 30;
  for (let n = 0; n < N; n++) await producer.publish("feed-in", record(n));
  await page.waitForFunction((n) => window.frames_.filter((f) => f.type === "message").length >= n, N);
  const messages = await page.evaluate(() => window.frames_.filter((f) => f.type === "message"));
  // Every record exactly once, as produced (the topic has several partitions: Kafka orders
  // records within a partition only).
  assert.deepEqual(
    messages.map((m) => m.data).sort((a, b) => a.n - b.n),
    [...Array(N).keys()].map(record),
    "every record exactly once, as produced",
  );
  const textBytes = (await page.evaluate(() => window.texts)) - textsBefore;
  const sentBytes = (await metric(bridge, "kafka_ws_bridge_sent_bytes_total")) - sentBefore;
  assert.ok(sentBytes * 2 < textBytes, `records went compressed: ${sentBytes} bytes sent for ${textBytes} of JSON`);
  step(
    `${N} records of ~${Math.round(textBytes / N)} bytes received intact; ${Math.round(sentBytes / N)} bytes a record on the wire (${(textBytes / sentBytes).toFixed(1)}×)`,
  );

  // 3. A large publish from the page, which Chromium compresses.
  const inflatedBefore = await metric(bridge, "kafka_ws_bridge_inflated_messages_total");
  const big = { ...record(1000), notes: "lorem ipsum dolor sit amet ".repeat(100) };
  const ack = await page.evaluate(async (data) => {
    const ws = window.ws;
    const acked = new Promise((resolve) => {
      const previous = ws.onmessage;
      ws.onmessage = (e) => {
        previous(e);
        const frame = JSON.parse(e.data);
        if (frame.id === "big") resolve(frame);
      };
    });
    ws.send(JSON.stringify({ type: "publish", id: "big", channel: "feed-in", data }));
    return await acked;
  }, big);
  assert.equal(ack.type, "ack", JSON.stringify(ack));
  const inflated = (await metric(bridge, "kafka_ws_bridge_inflated_messages_total")) - inflatedBefore;
  assert.ok(inflated >= 1, `the bridge inflated the page's publish (inflated_messages_total +${inflated})`);
  await page.waitForFunction(() => window.frames_.some((f) => f.type === "message" && f.data.n === 1000));
  const echoed = await page.evaluate(() => window.frames_.filter((f) => f.type === "message" && f.data.n === 1000).at(-1)?.data);
  assert.deepEqual(echoed, big, "the compressed publish reached Kafka and came back intact");
  step(`the page's ${JSON.stringify(big).length}-byte publish went compressed (inflated_messages_total +${inflated}), acked, echoed intact`);
  console.log(`==> permessage-deflate browser test passed in ${test.elapsed()} s`);
}

await test.run(main);

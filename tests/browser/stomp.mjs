// @stomp/stompjs in Debian's Chromium (playwright-core) against a real bridge and broker: the
// browser's own WebSocket asks for v12.stomp; CONNECT with a JWT as passcode; SUBSCRIBE to a
// broadcast channel, a keyed channel by /topic/<channel>/<key> and by /user/queue/<channel>;
// SEND with a receipt (RECEIPT after Kafka's ack, the record carries the bridge's headers, as a
// JSON client in Node sees); ERROR on a forbidden destination.
//
//   KAFKA_BOOTSTRAP (required), BRIDGE_BIN, CHROMIUM as for run.mjs.
// Run: node tests/browser/stomp.mjs   (after tests/browser/setup.sh)

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";

import { connect } from "../../clients/js/kafka-ws-bridge.js";
import {
  bootstrap,
  createTopics,
  makeConfig,
  mintJwt,
  startBridge,
  unique,
  waitFor,
  writeConfig,
} from "../../clients/js/test/harness.mjs";
import { browserTest, launchChromium } from "./lib.mjs";

const STOMPJS = join(dirname(fileURLToPath(import.meta.url)), "node_modules/@stomp/stompjs/bundles/stomp.umd.min.js");
const test = browserTest("STOMP browser test", 120000);
const { cleanup, step } = test;

async function main() {
  bootstrap();
  console.log(`==> STOMP browser test, broker ${process.env.KAFKA_BOOTSTRAP}`);
  const secret = "stomp-browser-secret-0123456789-abcdefghij";
  const token = (sub) => mintJwt({ sub, exp: Math.floor(Date.now() / 1000) + 300 }, secret);
  const feedTopic = unique("stomp-page-feed");
  const accountsTopic = unique("stomp-page-accounts");
  const config = writeConfig(
    makeConfig({
      auth: { mode: "jwt", jwt: { algorithms: ["HS256"], secret, leeway_seconds: 0 } },
      channels: [
        { name: "feed", topic: feedTopic, subscribe: { allow: "authenticated" } },
        {
          name: "accounts",
          topic: accountsTopic,
          key: { from: "record_key" },
          deliver: "by_key",
          subscribe: { allow: "authenticated", keys: "own" },
        },
      ],
      inbound: [
        { channel: "prices", topic: feedTopic, allow: "authenticated" },
        { channel: "set-balance", topic: accountsTopic, key: { pointer: "/customer" }, allow: "authenticated" },
      ],
    }),
  );
  await createTopics(config);
  const bridge = await startBridge(config);
  cleanup.push(() => bridge.stop());
  const json = connect(bridge.ws, { WebSocket, token: token("ops") });
  cleanup.push(() => json.close());
  const seen = [];
  await json.subscribe("feed", { onMessage: (data, frame) => seen.push(frame) }).ready;

  const browser = await launchChromium();
  cleanup.push(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${bridge.http}/`);
  await page.addScriptTag({ path: STOMPJS });
  step("page loaded with @stomp/stompjs");

  // Everything below runs in the page, with the browser's WebSocket.
  const result = await page.evaluate(
    async ({ url, tokens }) => {
      const open = (passcode) =>
        new Promise((resolve, reject) => {
          const client = new StompJs.Client({ brokerURL: url, connectHeaders: { passcode }, reconnectDelay: 0 });
          client.errors = [];
          client.onStompError = (frame) => client.errors.push({ ...frame.headers });
          client.onConnect = (frame) => resolve({ client, connected: frame.headers });
          client.onWebSocketClose = (e) => reject(new Error(`closed before CONNECTED (${e.code})`));
          client.activate();
        });
      const subscribe = (client, destination) =>
        new Promise((resolve) => {
          const got = [];
          const receipt = `sub-${destination}`;
          client.watchForReceipt(receipt, () => resolve(got));
          client.subscribe(destination, (m) => got.push({ body: m.body, headers: { ...m.headers } }), { receipt });
        });
      const until = async (check) => {
        for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
        if (!check()) throw new Error("timed out in the page");
      };
      const a = await open(tokens.c1);
      const b = await open(tokens.c1);
      const feed = await subscribe(a.client, "/topic/feed");
      const byKey = await subscribe(a.client, "/topic/accounts/C-1");
      const own = await subscribe(b.client, "/user/queue/accounts");
      const receipt = await new Promise((resolve) => {
        a.client.watchForReceipt("p-1", (frame) => resolve({ ...frame.headers }));
        a.client.publish({ destination: "/app/prices", body: JSON.stringify({ price: 42 }), headers: { receipt: "p-1" } });
      });
      a.client.publish({ destination: "/app/set-balance", body: JSON.stringify({ customer: "C-2", balance: 1 }) });
      a.client.publish({ destination: "/app/set-balance", body: JSON.stringify({ customer: "C-1", balance: 5 }) });
      await until(() => feed.length === 1 && byKey.length === 1 && own.length === 1);
      const c = await open(tokens.c1);
      const closed = new Promise((resolve) => (c.client.onWebSocketClose = (e) => resolve(e.code)));
      c.client.subscribe("/topic/accounts/C-2", () => {});
      const closeCode = await closed;
      return { connected: a.connected, feed, byKey, own, receipt, forbidden: c.client.errors, closeCode, errors: [...a.client.errors, ...b.client.errors] };
    },
    { url: bridge.ws, tokens: { c1: token("C-1") } },
  );
  assert.equal(result.connected.version, "1.2");
  assert.equal(result.connected["user-name"], "C-1");
  step("Chromium's WebSocket negotiated v12.stomp; CONNECTED as C-1");
  assert.equal(result.receipt["receipt-id"], "p-1");
  assert.deepEqual(JSON.parse(result.feed[0].body), { price: 42 });
  assert.equal(result.feed[0].headers.destination, "/topic/feed");
  assert.equal(result.feed[0].headers["content-type"], "application/json");
  assert.match(result.feed[0].headers["kafka-offset"], /^\d+$/);
  await waitFor(() => seen.length === 1, { what: "the record at the JSON client" });
  assert.equal(seen[0].headers["bridge-user"], "C-1");
  assert.ok(seen[0].headers["bridge-session"]);
  step("SEND → RECEIPT after Kafka's ack; MESSAGE on /topic/feed; the record carries bridge-user");
  assert.deepEqual(JSON.parse(result.byKey[0].body), { customer: "C-1", balance: 5 });
  assert.equal(result.byKey[0].headers.destination, "/topic/accounts/C-1");
  assert.deepEqual(JSON.parse(result.own[0].body), { customer: "C-1", balance: 5 });
  assert.equal(result.own[0].headers.destination, "/user/queue/accounts");
  step("keyed channel by /topic/accounts/C-1 and /user/queue/accounts: only the user's own key");
  assert.equal(result.forbidden.length, 1);
  assert.match(result.forbidden[0].message, /not allowed/);
  assert.equal(result.closeCode, 1002);
  assert.deepEqual(result.errors, []);
  step("a forbidden destination: ERROR, then the close");
}

await test.run(main);

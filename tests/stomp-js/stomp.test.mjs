// @stomp/stompjs (the client of Spring-style STOMP frontends) in Node against a real bridge and
// broker: CONNECT with a JWT as passcode, SUBSCRIBE to a broadcast channel (/topic/<channel>),
// a keyed channel by /topic/<channel>/<key> and by /user/queue/<channel>, SEND with a receipt
// (RECEIPT after Kafka's ack; the record carries the bridge's headers, seen by a JSON client),
// and ERROR on a forbidden destination. Node 20 has no global WebSocket: `ws` is the factory.
//
//   KAFKA_BOOTSTRAP (required), BRIDGE_BIN as for clients/js/test.
// Run: (cd tests/stomp-js && npm ci && npm test)

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@stomp/stompjs";
import { WebSocket } from "ws";

import { connect } from "../../clients/js/kafka-ws-bridge.js";
import {
  createTopics,
  makeConfig,
  mintJwt,
  startBridge,
  unique,
  waitFor,
  writeConfig,
} from "../../clients/js/test/harness.mjs";

const SECRET = "stomp-test-secret-0123456789-abcdefghij";
const feedTopic = unique("stomp-js-feed");
const accountsTopic = unique("stomp-js-accounts");

const config = makeConfig({
  auth: { mode: "jwt", jwt: { algorithms: ["HS256"], secret: SECRET, leeway_seconds: 0 } },
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
});

let bridge;
const closers = [];

function token(sub) {
  return mintJwt({ sub, exp: Math.floor(Date.now() / 1000) + 300 }, SECRET);
}

/** A stompjs client as a Spring frontend makes one, connected; `errors` collects ERROR frames. */
async function stomp(user) {
  const errors = [];
  const client = new Client({
    brokerURL: bridge.ws,
    webSocketFactory: () => new WebSocket(bridge.ws, ["v12.stomp", "v11.stomp", "v10.stomp"]),
    connectHeaders: { passcode: token(user) },
    reconnectDelay: 0,
    heartbeatIncoming: 1000,
    heartbeatOutgoing: 1000,
    onStompError: (frame) => errors.push(frame),
  });
  const connected = new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onWebSocketClose = () => reject(new Error("closed before CONNECTED"));
  });
  client.activate();
  const frame = await connected;
  closers.push(() => client.deactivate());
  return { client, errors, connected: frame };
}

/** Subscribes; resolves once the bridge's RECEIPT says the subscription is live. */
async function subscribe(client, destination) {
  const messages = [];
  const receipt = unique("sub");
  const live = new Promise((resolve) => client.watchForReceipt(receipt, resolve));
  client.subscribe(destination, (message) => messages.push(message), { receipt });
  await live;
  return messages;
}

before(async () => {
  const file = writeConfig(config);
  await createTopics(file);
  bridge = await startBridge(file);
});

after(async () => {
  for (const close of closers) await close();
  await bridge?.stop();
});

describe("@stomp/stompjs", () => {
  it("subscribes by Spring's destinations and SENDs with a receipt after Kafka's ack", async () => {
    const a = await stomp("C-1");
    assert.equal(a.connected.headers.version, "1.2");
    assert.equal(a.connected.headers["user-name"], "C-1");
    const b = await stomp("C-1");
    const feed = await subscribe(a.client, "/topic/feed");
    const byKey = await subscribe(a.client, "/topic/accounts/C-1");
    const own = await subscribe(b.client, "/user/queue/accounts");

    // A JSON client sees the records' Kafka headers.
    const json = connect(bridge.ws, { WebSocket, token: token("ops") });
    closers.push(() => json.close());
    const seen = [];
    await json.subscribe("feed", { onMessage: (data, frame) => seen.push(frame) }).ready;

    const receipt = unique("send");
    const acked = new Promise((resolve) => a.client.watchForReceipt(receipt, resolve));
    a.client.publish({
      destination: "/app/prices",
      body: JSON.stringify({ price: 42 }),
      headers: { receipt, "content-type": "application/json", "x-trace": "t-1" },
    });
    const ackFrame = await acked;
    assert.equal(ackFrame.headers["receipt-id"], receipt);

    await waitFor(() => feed.length === 1, { what: "MESSAGE on /topic/feed" });
    const message = feed[0];
    assert.deepEqual(JSON.parse(message.body), { price: 42 });
    assert.equal(message.headers.destination, "/topic/feed");
    assert.equal(message.headers["content-type"], "application/json");
    assert.ok(message.headers["message-id"]);
    assert.ok(message.headers.subscription);

    await waitFor(() => seen.length === 1, { what: "the record at the JSON client" });
    // The topic may have several partitions: the MESSAGE names the record's own position.
    assert.equal(message.headers["kafka-partition"], String(seen[0].partition));
    assert.equal(message.headers["kafka-offset"], String(seen[0].offset));
    assert.equal(seen[0].headers["bridge-user"], "C-1");
    assert.equal(seen[0].headers["x-trace"], "t-1");
    assert.ok(seen[0].headers["bridge-session"]);

    // Keyed: another user's record reaches neither; the user's own reaches both destinations.
    a.client.publish({ destination: "/app/set-balance", body: JSON.stringify({ customer: "C-2", balance: 1 }) });
    a.client.publish({ destination: "/app/set-balance", body: JSON.stringify({ customer: "C-1", balance: 5 }) });
    await waitFor(() => byKey.length === 1 && own.length === 1, { what: "the keyed MESSAGEs" });
    assert.deepEqual(JSON.parse(byKey[0].body), { customer: "C-1", balance: 5 });
    assert.equal(byKey[0].headers.destination, "/topic/accounts/C-1");
    assert.deepEqual(JSON.parse(own[0].body), { customer: "C-1", balance: 5 });
    assert.equal(own[0].headers.destination, "/user/queue/accounts");
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  });

  it("answers a forbidden destination with an ERROR frame", async () => {
    const c = await stomp("C-1");
    const closed = new Promise((resolve) => (c.client.onWebSocketClose = resolve));
    c.client.subscribe("/topic/accounts/C-2", () => assert.fail("no MESSAGE on a forbidden key"));
    await waitFor(() => c.errors.length === 1, { what: "ERROR" });
    assert.match(c.errors[0].headers.message, /not allowed/);
    assert.equal(c.errors[0].headers.code, "forbidden");
    await closed; // STOMP closes the connection after an ERROR
  });
});

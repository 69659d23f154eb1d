// The client against a real bridge and broker: connect, subscribe, publish, errors, history and
// snapshot. Needs KAFKA_BOOTSTRAP (and BRIDGE_BIN, default $CARGO_TARGET_DIR or target, then debug/kafka-ws-bridge).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";

import { connect, BridgeError } from "../kafka-ws-bridge.js";
import {
  createTopics,
  makeConfig,
  nextEvent,
  startBridge,
  unique,
  waitFor,
  writeConfig,
} from "./harness.mjs";

const feedTopic = unique("js-feed");
const balTopic = unique("js-bal");
const replyTopic = unique("js-replies");

const config = makeConfig({
  channels: [
    { name: "feed", topic: feedTopic, deliver: "broadcast", subscribe: { allow: "anonymous" }, history: 50 },
    {
      name: "balances",
      topic: balTopic,
      key: { from: "record_key" },
      deliver: "by_key",
      subscribe: { allow: "anonymous", keys: "any" },
      snapshot: true,
      history: 10,
    },
    { name: "replies", topic: replyTopic, deliver: "reply", subscribe: { allow: "anonymous" } },
  ],
  inbound: [
    { channel: "reply", topic: replyTopic, key: "none", allow: "anonymous" },
    { channel: "post-feed", topic: feedTopic, key: { pointer: "/k" }, allow: "anonymous" },
    { channel: "set-balance", topic: balTopic, key: { pointer: "/customer" }, allow: "anonymous" },
  ],
});

let bridge;
const clients = [];

function open(options = {}) {
  const client = connect(bridge.ws, { WebSocket, ...options });
  clients.push(client);
  return client;
}

function opened(client) {
  if (client.state === "open") return Promise.resolve();
  return nextEvent(client, "open");
}

before(async () => {
  const file = writeConfig(config);
  await createTopics(file);
  bridge = await startBridge(file);
}, { timeout: 60000 });

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  if (bridge) await bridge.stop();
}, { timeout: 30000 });

describe("connection", () => {
  it("connects and reports the welcome", { timeout: 30000 }, async () => {
    const client = open();
    assert.equal(client.state, "connecting");
    const states = [];
    client.on("state", (s) => states.push(s));
    const info = await opened(client);
    assert.equal(info.protocol, 1);
    assert.equal(info.user, null);
    assert.equal(info.reconnected, false);
    assert.match(info.session, /^[0-9a-f]{8,}$/);
    assert.equal(client.session, info.session);
    assert.equal(client.state, "open");
    assert.deepEqual(states, ["open"]);
  });

  it("accepts an http:// URL", { timeout: 30000 }, async () => {
    const client = connect(bridge.ws.replace(/^ws:/, "http:"), { WebSocket });
    clients.push(client);
    await opened(client);
    await client.close();
    assert.equal(client.state, "closed");
  });

  it("throws without a WebSocket implementation", { timeout: 30000 }, () => {
    if (typeof globalThis.WebSocket === "function") return; // Node >= 22 has one
    assert.throws(() => connect(bridge.ws), /no WebSocket implementation/);
  });
});

describe("publish and subscribe", () => {
  it("delivers a record published through the bridge, with the ack's position", { timeout: 30000 }, async () => {
    const client = open();
    const got = [];
    const sub = client.subscribe("feed", { onMessage: (data, frame) => got.push({ data, frame }) });
    const subscribed = await sub.ready;
    assert.equal(subscribed.channel, "feed");
    assert.equal(subscribed.replayed, 0);
    assert.equal(sub.active, true);

    const ack = await client.publish("post-feed", { k: "A", n: 1 }, { headers: { source: "test" } });
    assert.equal(ack.topic, feedTopic);
    assert.equal(typeof ack.partition, "number");
    assert.equal(typeof ack.offset, "number");
    assert.match(String(ack.id), /^p-/);

    await waitFor(() => got.length >= 1, { what: "the published record" });
    const { data, frame } = got[0];
    assert.deepEqual(data, { k: "A", n: 1 });
    assert.equal(frame.partition, ack.partition);
    assert.equal(frame.offset, ack.offset);
    assert.equal(frame.headers.source, "test");
    assert.equal(frame.headers["correlation-id"], ack.id);
    assert.equal(frame.headers["bridge-session"], client.session);
    assert.deepEqual(sub.positions, { [ack.partition]: ack.offset });
  });

  it("stops delivering after unsubscribe", { timeout: 30000 }, async () => {
    const client = open();
    const got = [];
    const sub = client.subscribe("feed", { onMessage: (d) => got.push(d) });
    const other = [];
    client.subscribe("feed", { onMessage: (d) => other.push(d) });
    await sub.ready;
    await client.publish("post-feed", { k: "A", n: "before" });
    await waitFor(() => got.length === 1 && other.length === 1, { what: "both subscriptions" });
    sub.unsubscribe();
    await client.publish("post-feed", { k: "A", n: "after" });
    await waitFor(() => other.length === 2, { what: "the other subscription's record" });
    assert.deepEqual(got, [{ k: "A", n: "before" }]);
    assert.equal(sub.active, false);
  });

  it("rejects a publish on an unknown channel with its code", { timeout: 30000 }, async () => {
    const client = open();
    await opened(client);
    const err = await client.publish("no-such-channel", { x: 1 }).then(
      () => assert.fail("resolved"),
      (e) => e,
    );
    assert.ok(err instanceof BridgeError);
    assert.equal(err.code, "unknown_channel");
    assert.equal(err.frame.type, "error");
    // The session carries on.
    const ack = await client.publish("post-feed", { k: "B" });
    assert.equal(ack.topic, feedTopic);
  });

  it("rejects a publish with a reserved header (bad_request)", { timeout: 30000 }, async () => {
    const client = open();
    await opened(client);
    await assert.rejects(client.publish("post-feed", { k: "B" }, { headers: { "correlation-id": "x" } }), {
      code: "bad_request",
    });
  });

  it("rejects a publish made while disconnected", { timeout: 30000 }, async () => {
    const client = open();
    await assert.rejects(client.publish("post-feed", { k: "A" }), { code: "disconnected" });
    await opened(client);
    await client.close();
    await assert.rejects(client.publish("post-feed", { k: "A" }), { code: "disconnected" });
  });

  it("rejects a publish not acknowledged in time", { timeout: 30000 }, async () => {
    const client = open({ publishTimeoutMs: 1 });
    await opened(client);
    await assert.rejects(client.publish("post-feed", { k: "A" }), { code: "timeout" });
  });

  it("reports a refused subscription through onError and ready", { timeout: 30000 }, async () => {
    const client = open();
    const errors = [];
    const sub = client.subscribe("post-feed", { onError: (e) => errors.push(e) });
    const err = await sub.ready.then(
      () => assert.fail("resolved"),
      (e) => e,
    );
    assert.equal(err.code, "unknown_channel");
    assert.match(err.message, /publish-only/);
    assert.equal(errors.length, 1);
    assert.equal(client.subscriptions.includes(sub), false);

    const clientErrors = [];
    client.on("error", (e) => clientErrors.push(e));
    const keyed = client.subscribe("feed", { key: "not-allowed-on-broadcast" });
    await assert.rejects(keyed.ready, { code: "bad_request" });
    assert.equal(clientErrors.length, 1);
    assert.equal(clientErrors[0].subscription, keyed);
  });
});

describe("reply channels", () => {
  // A publish on `reply` lands on the reply topic with the publisher's bridge-session header,
  // so the bridge routes it back to the publishing session: the test plays its own backend.
  it("keeps a reply subscription across a reconnect (without resume, which reply channels refuse)", { timeout: 30000 }, async () => {
    const client = open();
    const errors = [];
    client.on("error", (e) => errors.push(e));
    const replies = [];
    const sub = client.subscribe("replies", { onMessage: (d, f) => replies.push({ d, f }) });
    await sub.ready;
    await client.publish("reply", { n: 1 });
    await waitFor(() => replies.length === 1, { what: "the first reply" });
    assert.equal(replies[0].f.headers["bridge-session"], client.session);

    client.reconnect();
    await nextEvent(client, "open");
    await waitFor(() => sub.active, { what: "the reply subscription to be active again" });
    await client.publish("reply", { n: 2 });
    await waitFor(() => replies.length === 2, { what: "the reply after the reconnect" });
    assert.deepEqual(
      replies.map((r) => r.d.n),
      [1, 2],
    );
    assert.deepEqual(errors, []);
  });
});

describe("snapshot and history", () => {
  it("delivers the current value through onSnapshot, then only newer records", { timeout: 30000 }, async () => {
    const writer = open();
    const customer = unique("C");
    // A watcher tells when the bridge has consumed the records (an ack comes first).
    const seen = [];
    await writer.subscribe("balances", { key: customer, onMessage: (d) => seen.push(d) }).ready;
    await writer.publish("set-balance", { customer, balance: 10 });
    const last = await writer.publish("set-balance", { customer, balance: 20 });
    await waitFor(() => seen.length === 2, { what: "the bridge to consume both records" });

    const client = open();
    const snapshots = [];
    const messages = [];
    const sub = client.subscribe("balances", {
      key: customer,
      onSnapshot: (data, info) => snapshots.push({ data, info }),
      onMessage: (data) => messages.push(data),
    });
    // The snapshot channel's value arrives once the bridge consumed the record.
    const frame = await sub.ready;
    assert.equal(frame.key, customer);
    assert.equal(snapshots.length, 1, "one snapshot");
    assert.deepEqual(snapshots[0].data, { customer, balance: 20 });
    assert.equal(snapshots[0].info.offset, last.offset);
    assert.deepEqual(sub.positions, { [last.partition]: last.offset });

    await writer.publish("set-balance", { customer, balance: 30 });
    await waitFor(() => messages.length === 1, { what: "the live record" });
    assert.deepEqual(messages, [{ customer, balance: 30 }]);
  });

  it("replays `history` newest records, oldest first, once", { timeout: 30000 }, async () => {
    const writer = open();
    const customer = unique("C");
    const seen = []; // as above: tells when the bridge holds the records
    await writer.subscribe("balances", { key: customer, onMessage: (d) => seen.push(d) }).ready;
    for (let n = 1; n <= 6; n++) await writer.publish("set-balance", { customer, n });
    await waitFor(() => seen.length === 6, { what: "the six records" });

    const client = open();
    const snapshots = [];
    const messages = [];
    const sub = client.subscribe("balances", {
      key: customer,
      history: 4,
      onSnapshot: (d) => snapshots.push(d),
      onMessage: (d) => messages.push(d.n),
    });
    const frame = await sub.ready;
    assert.equal(frame.replayed, 4);
    await waitFor(() => messages.length === 4, { what: "the history" });
    assert.deepEqual(messages, [3, 4, 5, 6]);
    assert.deepEqual(snapshots, [{ customer, n: 6 }]);

    await writer.publish("set-balance", { customer, n: 7 });
    await waitFor(() => messages.length === 5, { what: "the live record" });
    assert.deepEqual(messages, [3, 4, 5, 6, 7]);

    // A history subscription on a broadcast channel.
    const feedClient = open();
    const feed = [];
    const feedSub = feedClient.subscribe("feed", { history: 2, onMessage: (d) => feed.push(d) });
    const feedFrame = await feedSub.ready;
    assert.equal(feedFrame.replayed, 2);
    await waitFor(() => feed.length === 2, { what: "the feed history" });
  });
});

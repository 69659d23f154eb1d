// The client against a scripted fake bridge (the `ws` package's server): exact frames, so that
// the cases a real bridge rarely produces are covered too — duplicates, the snapshot/history
// hand-over, another subscription's replay, dead connections. Needs no broker.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { WebSocket, WebSocketServer } from "ws";

import { connect } from "../kafka-ws-bridge.js";
import { nextEvent, sleep, waitFor } from "./harness.mjs";

const servers = [];
const clients = [];

/** A fake bridge: records what clients send, sends what the test says. */
async function fakeBridge({ welcome = true } = {}) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(wss, "listening");
  const connections = [];
  const waiters = [];
  wss.on("connection", (socket, request) => {
    const conn = {
      socket,
      url: new URL(request.url, "http://x"),
      received: [],
      send: (frame) => socket.send(JSON.stringify(frame)),
      close: (code, reason) => socket.close(code, reason),
      /** The next frame received of this type (waits for it). */
      async next(type) {
        return waitFor(
          () => {
            const i = this.received.findIndex((f) => f.type === type);
            return i >= 0 ? this.received.splice(i, 1)[0] : null;
          },
          { timeoutMs: 5000, what: `a ${type} frame` },
        );
      },
    };
    socket.on("message", (data) => conn.received.push(JSON.parse(String(data))));
    connections.push(conn);
    if (welcome) conn.send({ type: "welcome", session: `s${connections.length}`, user: null, protocol: 1 });
    for (const w of waiters.splice(0)) w();
  });
  const server = {
    url: `ws://127.0.0.1:${wss.address().port}/ws`,
    connections,
    /** Waits for the n-th connection (1-based). */
    async connection(n) {
      return waitFor(() => connections[n - 1], { timeoutMs: 5000, what: `connection ${n}` });
    },
    close: () => {
      for (const c of wss.clients) c.terminate();
      return new Promise((r) => wss.close(r));
    },
  };
  servers.push(server);
  return server;
}

function client(url, options = {}) {
  const c = connect(url, { WebSocket, reconnect: { minDelayMs: 20, maxDelayMs: 50 }, ...options });
  clients.push(c);
  return c;
}

function message(channel, partition, offset, data, key) {
  const frame = { type: "message", channel, data, partition, offset, timestamp: 0, headers: {} };
  if (key !== undefined) frame.key = key;
  return frame;
}

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

describe("frames", () => {
  it("drops duplicates and stale offsets per partition", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url);
    const got = [];
    const sub = c.subscribe("feed", { onMessage: (d, f) => got.push(`${f.partition}:${f.offset}`) });
    const conn = await server.connection(1);
    const s = await conn.next("subscribe");
    assert.deepEqual(Object.keys(s).sort(), ["channel", "id", "type"]);
    conn.send({ type: "subscribed", id: s.id, channel: "feed", snapshot: null, replayed: 0, gap: false });
    for (const [p, o] of [[0, 5], [0, 5], [1, 2], [0, 4], [0, 6], [1, 2], [1, 3]]) {
      conn.send(message("feed", p, o, {}));
    }
    await waitFor(() => got.length === 4, { what: "4 messages" });
    await sleep(50);
    assert.deepEqual(got, ["0:5", "1:2", "0:6", "1:3"]);
    assert.deepEqual(sub.positions, { 0: 6, 1: 3 });
  });

  it("resumes after saved positions on the first subscribe, dropping what they cover", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url);
    const got = [];
    const sub = c.subscribe("inbox", { history: 50, resume: { 1: 4, 2: "x" }, onMessage: (d) => got.push(d) });
    const conn = await server.connection(1);
    const first = await conn.next("subscribe");
    assert.deepEqual(first.resume, { 1: 4 }, "saved integer positions only");
    assert.equal(first.history, undefined, "resume instead of history");
    conn.send({ type: "subscribed", id: first.id, channel: "inbox", key: "bob", snapshot: null, replayed: 3, gap: false });
    for (const o of [4, 5, 6]) conn.send(message("inbox", 1, o, `m${o}`, "bob"));
    await waitFor(() => sub.positions[1] === 6, { what: "the replay" });
    assert.deepEqual(got, ["m5", "m6"], "offset 4 was seen before the page load");
    // An empty map is no resume: history as usual.
    const fresh = c.subscribe("outbox", { history: 5, resume: {} });
    const second = await conn.next("subscribe");
    assert.equal(second.history, 5);
    assert.equal(second.resume, undefined);
    fresh.unsubscribe();
  });

  it("sends history once, then resumes after the snapshot and history", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url);
    const snapshots = [];
    const got = [];
    const sub = c.subscribe("balances", {
      key: 42,
      history: 3,
      onSnapshot: (d, info) => snapshots.push({ d, info }),
      onMessage: (d) => got.push(d),
    });
    let conn = await server.connection(1);
    const first = await conn.next("subscribe");
    assert.equal(first.key, "42");
    assert.equal(first.history, 3);
    assert.equal(first.resume, undefined);
    // The snapshot is the newest record, which the history replay ends with.
    conn.send({
      type: "subscribed",
      id: first.id,
      channel: "balances",
      key: "42",
      snapshot: { data: "v9", partition: 2, offset: 9 },
      replayed: 3,
      gap: false,
    });
    for (const o of [7, 8, 9]) conn.send(message("balances", 2, o, `v${o}`, "42"));
    await waitFor(() => got.length === 3, { what: "the history" });
    assert.deepEqual(got, ["v7", "v8", "v9"]);
    assert.deepEqual(snapshots, [{ d: "v9", info: { channel: "balances", key: "42", partition: 2, offset: 9 } }]);
    assert.deepEqual(sub.positions, { 2: 9 });

    const gaps = [];
    c.on("gap", (g) => gaps.push(g));
    conn.close(1001, "shutting down");
    conn = await server.connection(2);
    const again = await conn.next("subscribe");
    assert.deepEqual(again.resume, { 2: 9 });
    assert.equal(again.history, undefined);
    // On a resume, the snapshot is not delivered again; the replay is.
    conn.send({
      type: "subscribed",
      id: again.id,
      channel: "balances",
      key: "42",
      snapshot: { data: "v10", partition: 2, offset: 10 },
      replayed: 1,
      gap: true,
    });
    conn.send(message("balances", 2, 10, "v10", "42"));
    await waitFor(() => got.length === 4, { what: "the replay" });
    assert.equal(snapshots.length, 1);
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0].key, "42");
  });

  it("applies the snapshot position at once when nothing is replayed", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url);
    const got = [];
    const sub = c.subscribe("balances", { key: "K", onMessage: (d) => got.push(d) });
    const conn = await server.connection(1);
    const s = await conn.next("subscribe");
    conn.send({
      type: "subscribed",
      id: s.id,
      channel: "balances",
      key: "K",
      snapshot: { data: 1, partition: 0, offset: 3 },
      replayed: 0,
      gap: false,
    });
    conn.send(message("balances", 0, 3, 1, "K")); // already seen as the snapshot
    conn.send(message("balances", 0, 4, 2, "K"));
    await waitFor(() => got.length >= 1, { what: "a message" });
    await sleep(50);
    assert.deepEqual(got, [2]);
    assert.deepEqual(sub.positions, { 0: 4 });
  });

  it("keeps another subscription of the same channel out of a new one's replay", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url);
    const a = [];
    const b = [];
    c.subscribe("feed", { onMessage: (d) => a.push(d) });
    const conn = await server.connection(1);
    const sa = await conn.next("subscribe");
    conn.send({ type: "subscribed", id: sa.id, channel: "feed", snapshot: null, replayed: 0, gap: false });
    conn.send(message("feed", 0, 10, "live10"));
    await waitFor(() => a.length === 1, { what: "a's first record" });
    const subB = c.subscribe("feed", { history: 2, onMessage: (d) => b.push(d) });
    const sb = await conn.next("subscribe");
    assert.equal(sb.history, 2);
    conn.send({ type: "subscribed", id: sb.id, channel: "feed", snapshot: null, replayed: 2, gap: false });
    conn.send(message("feed", 1, 3, "old3"));
    conn.send(message("feed", 0, 10, "live10"));
    conn.send(message("feed", 0, 11, "live11"));
    await waitFor(() => a.length === 2 && b.length === 3, { what: "both subscriptions" });
    assert.deepEqual(a, ["live10", "live11"]);
    assert.deepEqual(b, ["old3", "live10", "live11"]);
    // Unsubscribing one keeps the bridge subscription for the other.
    subB.unsubscribe();
    await sleep(50);
    assert.equal(conn.received.filter((f) => f.type === "unsubscribe").length, 0);
  });

  it("rejects pending publishes when the connection drops", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url);
    await nextEvent(c, "open");
    const conn = await server.connection(1);
    const pending = c.publish("commands", { op: "x" }, { headers: { a: "b" }, id: "my-id" });
    const p = await conn.next("publish");
    assert.deepEqual(p, { type: "publish", id: "my-id", channel: "commands", data: { op: "x" }, headers: { a: "b" } });
    conn.close(1011, "oops");
    await assert.rejects(pending, { code: "disconnected" });
  });

  it("does not reconnect after session_replaced", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url);
    await nextEvent(c, "open");
    const conn = await server.connection(1);
    const replaced = nextEvent(c, "session_replaced");
    conn.send({ type: "session_replaced" });
    conn.close(4000, "replaced by a newer session");
    await replaced;
    await sleep(200);
    assert.equal(server.connections.length, 1);
    assert.equal(c.state, "closed");
    // reconnect() takes the session back on demand.
    c.reconnect();
    await nextEvent(c, "open");
    assert.equal(server.connections.length, 2);
  });

  it("drops a connection that stops answering pings", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url, { heartbeat: { intervalMs: 50, timeoutMs: 100 } });
    await nextEvent(c, "open");
    const conn = await server.connection(1);
    const ping = await conn.next("ping");
    assert.match(String(ping.id), /^h-/);
    conn.send({ type: "pong", id: ping.id });
    // Stop answering (the fake never answers unless told): the client gives up and reconnects.
    const closed = await nextEvent(c, "close", 2000);
    assert.equal(closed.reason, "heartbeat timeout");
    await server.connection(2);
  });

  it("calls getToken before every connect and retries when it fails", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    let calls = 0;
    const errors = [];
    const c = client(server.url, {
      async getToken() {
        calls += 1;
        if (calls === 1) throw new Error("identity provider down");
        return `token-${calls}`;
      },
    });
    c.on("error", (e) => errors.push(e));
    await nextEvent(c, "open");
    assert.equal(errors[0].code, "token");
    assert.equal(server.connections[0].url.searchParams.get("access_token"), "token-2");
    server.connections[0].close(4002, "token expired");
    await nextEvent(c, "open");
    assert.equal(server.connections[1].url.searchParams.get("access_token"), "token-3");
  });

  it("reports callback exceptions as error events and carries on", { timeout: 10000 }, async () => {
    const server = await fakeBridge();
    const c = client(server.url);
    const errors = [];
    c.on("error", (e) => errors.push(e));
    const got = [];
    c.subscribe("feed", {
      onMessage: (d) => {
        got.push(d);
        if (d === 1) throw new Error("render failed");
      },
    });
    const conn = await server.connection(1);
    const s = await conn.next("subscribe");
    conn.send({ type: "subscribed", id: s.id, channel: "feed", snapshot: null, replayed: 0, gap: false });
    conn.send(message("feed", 0, 1, 1));
    conn.send(message("feed", 0, 2, 2));
    await waitFor(() => got.length === 2, { what: "both messages" });
    assert.equal(errors.length, 1);
    assert.equal(errors[0].code, "callback");
    assert.equal(errors[0].cause.message, "render failed");
  });
});

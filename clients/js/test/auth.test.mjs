// JWT sessions: the user from the token, refused handshakes, one session per user
// (session_replaced, no reconnect), in-band refresh on token_expiring (one session across token
// lifetimes), and token expiry (token_expired, reconnect with getToken when a refresh failed).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";

import { connect } from "../kafka-ws-bridge.js";
import {
  createTopics,
  makeConfig,
  mintJwt,
  nextEvent,
  sleep,
  startBridge,
  unique,
  waitFor,
  writeConfig,
} from "./harness.mjs";

const SECRET = "client-test-secret-0123456789-abcdefghij";
const balTopic = unique("js-auth-bal");

const config = makeConfig({
  auth: {
    mode: "jwt",
    jwt: { algorithms: ["HS256"], secret: SECRET, leeway_seconds: 0 },
    max_sessions_per_user: 1,
    // token_expiring 1 s before exp: the tests' tokens live 3 s.
    refresh_warning_s: 1,
  },
  channels: [
    {
      name: "balances",
      topic: balTopic,
      key: { from: "record_key" },
      deliver: "by_key",
      subscribe: { allow: "authenticated", keys: "own" },
      snapshot: true,
      history: 10,
    },
  ],
  inbound: [{ channel: "set-balance", topic: balTopic, key: { pointer: "/customer" }, allow: "authenticated" }],
});

let bridge;
const clients = [];

function token(sub, seconds = 300) {
  return mintJwt({ sub, exp: Math.floor(Date.now() / 1000) + seconds }, SECRET);
}

function client(options) {
  const c = connect(bridge.ws, { WebSocket, reconnect: { minDelayMs: 100, maxDelayMs: 1000 }, ...options });
  clients.push(c);
  return c;
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

describe("authentication", () => {
  it("opens a session as the token's user; by_key subscriptions default to the own key", { timeout: 30000 }, async () => {
    const user = unique("C");
    const c = client({ token: token(user) });
    const info = await nextEvent(c, "open");
    assert.equal(info.user, user);
    assert.equal(c.user, user);
    const got = [];
    const sub = c.subscribe("balances", { onMessage: (d) => got.push(d) });
    await sub.ready;
    assert.equal(sub.key, user);
    await c.publish("set-balance", { customer: user, balance: 5 });
    await waitFor(() => got.length === 1, { what: "the own record" });
    const refused = c.subscribe("balances", { key: "someone-else", onError: () => {} });
    await assert.rejects(refused.ready, { code: "forbidden" });
  });

  it("keeps retrying, with growing delays, while the handshake is refused", { timeout: 30000 }, async () => {
    const c = client({ reconnect: { minDelayMs: 50, maxDelayMs: 400 } }); // no token: HTTP 401
    const attempts = [];
    c.on("reconnecting", (r) => attempts.push(r));
    let opened = false;
    c.on("open", () => (opened = true));
    await waitFor(() => attempts.length >= 5, { what: "five reconnect attempts" });
    await c.close();
    assert.equal(opened, false);
    assert.deepEqual(
      attempts.slice(0, 5).map((a) => a.attempt),
      [1, 2, 3, 4, 5],
    );
    // Jittered: between half and all of min(max, min * 2^n).
    for (const [i, { delayMs }] of attempts.slice(0, 5).entries()) {
      const ceiling = Math.min(400, 50 * 2 ** i);
      assert.ok(delayMs >= ceiling / 2 && delayMs <= ceiling, `attempt ${i + 1}: ${delayMs} ms`);
    }
  });

  it("reports session_replaced and does not reconnect", { timeout: 30000 }, async () => {
    const user = unique("C");
    const first = client({ token: token(user) });
    await nextEvent(first, "open");
    const events = [];
    for (const name of ["close", "session_replaced", "reconnecting", "open"]) {
      first.on(name, (payload) => events.push({ name, payload }));
    }
    const replaced = nextEvent(first, "session_replaced");
    const second = client({ token: token(user) });
    const secondInfo = await nextEvent(second, "open");
    const event = await replaced;
    assert.equal(event.code, 4000);
    await sleep(1500); // would-be reconnects happen meanwhile
    assert.deepEqual(
      events.map((e) => e.name),
      ["close", "session_replaced"],
    );
    assert.equal(events[0].payload.code, 4000);
    assert.equal(events[0].payload.willReconnect, false);
    assert.equal(first.state, "closed");
    assert.equal(second.state, "open");
    assert.equal(second.session, secondInfo.session);
  });

  it("refreshes in-band on token_expiring: one session across three token lifetimes", { timeout: 30000 }, async () => {
    const user = unique("C");
    const tokens = [];
    const c = client({
      async getToken() {
        const t = token(user, 3);
        tokens.push(t);
        return t;
      },
    });
    let opens = 0;
    let refreshed = 0;
    c.on("open", () => opens++);
    c.on("token_refreshed", () => refreshed++);
    const got = [];
    const sub = c.subscribe("balances", { onMessage: (d) => got.push(d.n) });
    await sub.ready;
    const writer = client({ token: token(unique("W")) });
    await nextEvent(writer, "open");
    const started = Date.now();
    await writer.publish("set-balance", { customer: user, n: 0 });
    // Three refreshes: the session outlives three 3-second tokens.
    await waitFor(() => refreshed >= 3, { what: "three in-band refreshes", timeoutMs: 20000 });
    assert.ok(Date.now() - started > 3000, "past the first token's exp");
    await writer.publish("set-balance", { customer: user, n: 1 });
    await waitFor(() => got.length === 2, { what: "records after the refreshes" });
    assert.deepEqual(got, [0, 1]);
    assert.equal(opens, 1, "no reconnect");
    assert.equal(tokens.length, 1 + refreshed, "getToken: once to connect, once per refresh");
    assert.ok(c.expiresAt > Date.now(), `expiresAt ${c.expiresAt} is ahead`);
  });

  it("falls back to a reconnect with getToken when the refresh is refused", { timeout: 30000 }, async () => {
    const user = unique("C");
    let calls = 0;
    const c = client({
      async getToken() {
        calls += 1;
        // 1: connect (3 s); 2: the refresh, with another user's token (forbidden); 3: reconnect.
        if (calls === 2) return token(unique("other"), 300);
        return token(user, calls === 1 ? 3 : 300);
      },
    });
    const errors = [];
    c.on("error", (e) => errors.push(e.code));
    await nextEvent(c, "open");
    const closeEvent = await nextEvent(c, "close", 8000);
    assert.equal(closeEvent.code, 4002);
    assert.equal(closeEvent.willReconnect, true);
    const info = await nextEvent(c, "open", 8000);
    assert.equal(info.reconnected, true);
    assert.equal(info.user, user);
    assert.deepEqual(errors, ["forbidden"]);
    assert.equal(calls, 3);
  });

  it("stops after a token expiry when there is no getToken", { timeout: 30000 }, async () => {
    const c = client({ token: token(unique("C"), 1) });
    await nextEvent(c, "open");
    const closeEvent = await nextEvent(c, "close", 5000);
    assert.equal(closeEvent.code, 4002);
    assert.equal(closeEvent.willReconnect, false);
    assert.equal(c.state, "closed");
  });
});

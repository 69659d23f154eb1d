// Reconnect and resume: the subscriber's bridge restarts (same config, instance id and port)
// while a second bridge keeps producing; every record must reach the subscriber exactly once.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";

import { connect } from "../kafka-ws-bridge.js";
import {
  createTopics,
  freePort,
  makeConfig,
  nextEvent,
  sleep,
  startBridge,
  unique,
  waitFor,
  writeConfig,
} from "./harness.mjs";

const feedTopic = unique("js-resume-feed");
const balTopic = unique("js-resume-bal");

function channels({ history = 50 } = {}) {
  return {
    channels: [
      { name: "feed", topic: feedTopic, deliver: "broadcast", subscribe: { allow: "anonymous" }, history },
      {
        name: "balances",
        topic: balTopic,
        key: { from: "record_key" },
        deliver: "by_key",
        subscribe: { allow: "anonymous", keys: "any" },
        snapshot: true,
        history: 10,
      },
    ],
    inbound: [
      { channel: "post-feed", topic: feedTopic, key: { pointer: "/k" }, allow: "anonymous" },
      { channel: "set-balance", topic: balTopic, key: { pointer: "/customer" }, allow: "anonymous" },
    ],
  };
}

const FAST_RECONNECT = { minDelayMs: 100, maxDelayMs: 1000 };
const bridges = [];
const clients = [];
let producerBridge;

function client(url, options = {}) {
  const c = connect(url, { WebSocket, reconnect: FAST_RECONNECT, ...options });
  clients.push(c);
  return c;
}

async function bridge(config) {
  const b = await startBridge(writeConfig(config));
  bridges.push(b);
  return b;
}

/** A subscriber's view of one test's records (tagged `t`): every sequence number, and per
 * key the order they came in. */
function recorder(tag) {
  const all = [];
  const byKey = new Map();
  return {
    all,
    byKey,
    onMessage(data) {
      if (data.t !== tag) return; // another test's record
      all.push(data.n);
      if (!byKey.has(data.k)) byKey.set(data.k, []);
      byKey.get(data.k).push(data.n);
    },
  };
}

function assertExactlyOnce(rec, total, what) {
  const sorted = [...rec.all].sort((a, b) => a - b);
  const dupes = sorted.filter((n, i) => i > 0 && sorted[i - 1] === n);
  assert.deepEqual(dupes, [], `${what}: duplicates`);
  const missing = [];
  for (let n = 0; n < total; n++) if (!sorted.includes(n)) missing.push(n);
  assert.deepEqual(missing, [], `${what}: missing records`);
  assert.equal(rec.all.length, total, `${what}: count`);
  for (const [key, seq] of rec.byKey) {
    assert.deepEqual(seq, [...seq].sort((a, b) => a - b), `${what}: order within key ${key}`);
  }
}

before(async () => {
  const file = writeConfig(makeConfig(channels()));
  await createTopics(file);
  // The producers below publish as fast as acks come back; on a fast machine that exceeds the
  // default per-session limit (100/s after a burst of 200) and a publish gets `rate_limited`.
  // Rate limits are tested in tests/hostile.rs; here they are off.
  producerBridge = await bridge(makeConfig({
    instanceId: unique("js-producer"),
    server: { publish_rate: { per_second: 0 } },
    ...channels(),
  }));
}, { timeout: 60000 });

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(bridges.map((b) => b.stop()));
}, { timeout: 30000 });

describe("reconnect and resume", () => {
  async function restartScenario(signal, { minUptimeMs = 0 } = {}) {
    const port = await freePort();
    // After a crash, the restarted consumer waits for the dead member's group session to time
    // out before it gets partitions (librdkafka's default: 45 s); shorten it.
    const kafka = {
      consumer_properties: { "session.timeout.ms": 6000, "heartbeat.interval.ms": 500 },
    };
    const subscriberConfig = writeConfig(
      makeConfig({ port, instanceId: unique("js-subscriber"), kafka, ...channels() }),
    );
    let subscriberBridge = await startBridge(subscriberConfig);
    bridges.push(subscriberBridge);
    const upSince = Date.now();

    const customer = unique("C");
    const tag = unique("t");
    const feed = recorder(tag);
    const balances = recorder(tag);
    const gaps = [];
    const closes = [];
    const c = client(subscriberBridge.ws);
    c.on("gap", (g) => gaps.push(g));
    c.on("close", (e) => closes.push(e));
    const feedSub = c.subscribe("feed", { onMessage: feed.onMessage });
    const balSub = c.subscribe("balances", { key: customer, onMessage: balances.onMessage });
    await Promise.all([feedSub.ready, balSub.ready]);

    // Produce continuously through the other bridge.
    const producer = client(producerBridge.ws);
    await nextEvent(producer, "open");
    let produced = 0;
    let stop = false;
    const producing = (async () => {
      while (!stop) {
        const n = produced;
        await Promise.all([
          producer.publish("post-feed", { t: tag, k: `k${n % 5}`, n }),
          producer.publish("set-balance", { t: tag, customer, k: customer, n }),
        ]);
        produced = n + 1;
        await sleep(10);
      }
    })();
    try {
      // Records on every partition before the restart: on a partition the bridge never consumed
      // from, a restart may start at `latest` (the bridge issue of the early-crash test below).
      await waitFor(() => feed.all.length >= 20 && feed.byKey.size === 5, { what: "the first records" });
      await sleep(minUptimeMs - (Date.now() - upSince));
      const reopened = nextEvent(c, "open", 40000);
      await subscriberBridge.stop(signal); // SIGTERM: sessions closed with 1001; SIGKILL: a crash
      const producedAtStop = produced;
      await sleep(1500); // records keep coming while the subscriber's bridge is down
      assert.ok(produced > producedAtStop + 5, "records were produced during the outage");
      subscriberBridge = await startBridge(subscriberConfig);
      bridges.push(subscriberBridge);
      const info = await reopened;
      assert.equal(info.reconnected, true);
      await sleep(500);
    } finally {
      stop = true;
      await producing;
    }

    await waitFor(() => feed.all.length >= produced && balances.all.length >= produced, {
      timeoutMs: 20000,
      what: `all ${produced} records (feed has ${feed.all.length}, balances ${balances.all.length})`,
    });
    await sleep(300); // would-be duplicates arrive meanwhile
    assert.equal(closes[0].code, signal === "SIGTERM" ? 1001 : 1006);
    assert.equal(closes[0].willReconnect, true);
    assertExactlyOnce(feed, produced, "feed");
    assertExactlyOnce(balances, produced, "balances");
    assert.deepEqual(gaps, []);
  }

  it("resumes after the bridge restarts, without gaps or duplicates", { timeout: 60000 }, () =>
    restartScenario("SIGTERM"));

  // After a crash the bridge routes again what it routed since its last offset commit (every
  // 5 s); the client filters those by offset.
  it("resumes after the bridge crashes, without gaps or duplicates", { timeout: 60000 }, () =>
    restartScenario("SIGKILL", { minUptimeMs: 6500 }));

  // Before its first periodic commit, a new consumer group relies on the commit of its start
  // positions (else a restart begins at `latest` and skips what was produced meanwhile).
  it("resumes after the bridge crashes within its first seconds", { timeout: 60000 }, () =>
    restartScenario("SIGKILL"));

  it("delivers records produced during a restart on partitions the subscription had not seen", { timeout: 60000 }, async () => {
    const port = await freePort();
    const config = writeConfig(makeConfig({ port, instanceId: unique("js-subscriber"), ...channels() }));
    let subscriberBridge = await startBridge(config);
    bridges.push(subscriberBridge);
    const tag = unique("t");
    const feed = recorder(tag);
    const c = client(subscriberBridge.ws);
    const sub = c.subscribe("feed", { onMessage: feed.onMessage });
    await sub.ready;
    const producer = client(producerBridge.ws);
    await nextEvent(producer, "open");
    const first = await producer.publish("post-feed", { t: tag, k: "seen", n: 0 });
    await waitFor(() => feed.all.length === 1, { what: "the first record" });

    const reopened = nextEvent(c, "open", 40000);
    await subscriberBridge.stop();
    // Produce until records landed on every other partition (3 partitions per topic).
    const partitions = new Set([first.partition]);
    let n = 1;
    while (partitions.size < 3) {
      const ack = await producer.publish("post-feed", { t: tag, k: `unseen-${n}`, n });
      partitions.add(ack.partition);
      n += 1;
      assert.ok(n < 200, "keys spread over the partitions");
    }
    subscriberBridge = await startBridge(config);
    bridges.push(subscriberBridge);
    await reopened;
    await waitFor(() => feed.all.length >= n, { what: `all ${n} records (got ${feed.all.length})` });
    await sleep(300);
    assertExactlyOnce(feed, n, "feed");
  });

  it("resumes after the connection drops, from the bridge's memory", { timeout: 60000 }, async () => {
    const customer = unique("C");
    const tag = unique("t");
    const feed = recorder(tag);
    const balances = recorder(tag);
    const c = client(producerBridge.ws);
    const snapshots = [];
    c.subscribe("feed", { onMessage: feed.onMessage });
    await c.subscribe("balances", {
      key: customer,
      onMessage: balances.onMessage,
      onSnapshot: (d) => snapshots.push(d),
    }).ready;

    const producer = client(producerBridge.ws);
    await nextEvent(producer, "open");
    const total = 120;
    let dropped = 0;
    for (let n = 0; n < total; n++) {
      await Promise.all([
        producer.publish("post-feed", { t: tag, k: `k${n % 7}`, n }),
        producer.publish("set-balance", { t: tag, customer, k: customer, n }),
      ]);
      if (n % 30 === 15) {
        c.reconnect(); // drop the socket; publishes go on while it reconnects
        dropped++;
      }
    }
    await waitFor(() => feed.all.length >= total && balances.all.length >= total, {
      what: `all ${total} records (feed has ${feed.all.length}, balances ${balances.all.length})`,
    });
    await sleep(300);
    assert.equal(dropped, 4);
    assertExactlyOnce(feed, total, "feed");
    assertExactlyOnce(balances, total, "balances");
    assert.deepEqual(snapshots, [], "no snapshot existed at the first subscribe; resumes deliver none");
  });

  // A resume is a burst: 10,000 records replayed at once must not close a client that reads
  // (the send queue bounds count only what waits behind a socket that stopped taking bytes).
  it("resumes 10,000 missed records after a reconnect without being closed as slow", { timeout: 90000 }, async () => {
    const big = await bridge(makeConfig({
      ...channels(),
      server: { replay_max_records: 20000, publish_rate: { per_second: 0 } },
    }));
    const customer = unique("C");
    const got = [];
    const closes = [];
    const gaps = [];
    const c = client(big.ws);
    c.on("close", (e) => closes.push(e));
    c.on("gap", (g) => gaps.push(g));
    const offsets = [];
    const sub = c.subscribe("balances", {
      key: customer,
      onMessage: (d, frame) => {
        got.push(d.n);
        offsets.push(frame.offset);
      },
    });
    await sub.ready;
    const producer = client(big.ws);
    await nextEvent(producer, "open");
    await producer.publish("set-balance", { customer, n: 0 });
    await waitFor(() => got.length === 1, { what: "the first record" });

    await c.close();
    const missed = 10000;
    for (let first = 1; first <= missed; first += 250) {
      const batch = [];
      for (let n = first; n < first + 250 && n <= missed; n++) {
        batch.push(producer.publish("set-balance", { customer, n }));
      }
      await Promise.all(batch);
    }
    const reopened = nextEvent(c, "open", 40000);
    c.reconnect();
    await reopened;
    await waitFor(() => got.length >= missed + 1, {
      timeoutMs: 60000,
      what: `all ${missed + 1} records (got ${got.length})`,
    });
    await sleep(300); // would-be duplicates arrive meanwhile
    // Publishes run concurrently, so Kafka's order (by offset) is the one to check.
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: missed + 1 }, (_, n) => n),
      "every record once");
    assert.ok(offsets.every((o, i) => i === 0 || o > offsets[i - 1]), "in offset order");
    assert.deepEqual(gaps, []);
    assert.deepEqual(closes.map((e) => e.code).filter((code) => code !== 1000 && code !== 1005), [],
      "no close but the client's own");
  });

  it("reports a gap when the bridge cannot replay everything that was missed", { timeout: 60000 }, async () => {
    const small = await bridge(makeConfig({ ...channels(), server: { replay_max_records: 5 } }));
    const customer = unique("C");
    const got = [];
    const watcherGot = [];
    const c = client(small.ws);
    const sub = c.subscribe("balances", { key: customer, onMessage: (d) => got.push(d.n) });
    await sub.ready;
    const watcher = client(small.ws);
    await watcher.subscribe("balances", { key: customer, onMessage: (d) => watcherGot.push(d.n) }).ready;

    await c.publish("set-balance", { customer, n: 0 });
    await waitFor(() => got.length === 1, { what: "the first record" });
    await c.close();
    for (let n = 1; n <= 9; n++) await watcher.publish("set-balance", { customer, n });
    await waitFor(() => watcherGot.length === 10, { what: "the bridge to hold the records" });

    const gap = nextEvent(c, "gap");
    c.reconnect();
    const event = await gap;
    assert.equal(event.subscription, sub);
    assert.equal(event.frame.gap, true);
    assert.equal(event.frame.replayed, 5);
    await waitFor(() => got.length === 6, { what: "the newest records" });
    assert.deepEqual(got, [0, 5, 6, 7, 8, 9]);
  });

  it("does not reconnect after close()", { timeout: 60000 }, async () => {
    const c = client(producerBridge.ws);
    await nextEvent(c, "open");
    let reconnecting = 0;
    c.on("reconnecting", () => reconnecting++);
    const closed = nextEvent(c, "close");
    await c.close();
    const event = await closed;
    assert.equal(event.willReconnect, false);
    await sleep(400);
    assert.equal(reconnecting, 0);
    assert.equal(c.state, "closed");
  });
});

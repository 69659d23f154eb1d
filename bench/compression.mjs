// permessage-deflate: bytes on the wire and the bridge's CPU per delivery, compression off vs on,
// for ~1 KiB JSON records fanned out to SESSIONS WebSocket sessions at a fixed rate. The
// sessions are Node `ws` clients, which offer permessage-deflate like browsers; the bridge
// accepts (server.compression.enabled: true) or declines (false). Records are published through
// the bridge's inbound channel by one more (uncompressed) session, so they go through Kafka.
//
//   KAFKA_BOOTSTRAP (required); BRIDGE_BIN (default: the release build if there is one);
//   SESSIONS (100), RECORDS (2000), RATE (records/s, 400), IDLE (idle sessions for the RSS
//   figure, 1000), OUT (a file to write the results to, as JSON)
// Run: node bench/compression.mjs   (after `npm ci` in clients/js, which provides `ws`)
//
// Run by scripts/bench.sh (its "Compression" table). Reports: RSS per idle session (IDLE
// sessions that negotiated compression or not, each subscribed, RSS delta over sessions), bytes per delivery (sent_bytes_total, payload as
// sent, over messages_delivered_total; it also counts the publisher's acks, a few bytes per
// delivery), the JSON text per delivery, the bridge's CPU time per delivery (/proc/PID/stat
// utime+stime over the run, publishing and consuming included) and its RSS at the end. CPU
// figures mean something only for a release build, on an otherwise idle machine.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import {
  REPO_ROOT,
  createTopics,
  makeConfig,
  startBridge,
  unique,
  waitFor,
  writeConfig,
  metric,
  record,
} from "../clients/js/test/harness.mjs";

const { WebSocket } = createRequire(join(REPO_ROOT, "clients/js/package.json"))("ws");

const SESSIONS = Number(process.env.SESSIONS || 100);
const RECORDS = Number(process.env.RECORDS || 2000);
const RATE = Number(process.env.RATE || 400);
const IDLE = Number(process.env.IDLE || 1000);
if (!process.env.BRIDGE_BIN) {
  const release = join(process.env.CARGO_TARGET_DIR || join(REPO_ROOT, "target"), "release", "kafka-ws-bridge");
  if (existsSync(release)) process.env.BRIDGE_BIN = release;
}

function cpuTicks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100 Hz)
}

function rssKib(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line.split(/\s+/)[1]);
}

function open(url, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

async function measure(compression) {
  const topic = unique("bench-deflate");
  const config = writeConfig(
    makeConfig({
      instanceId: unique("bench-deflate"),
      server: {
        compression: { enabled: compression },
        publish_rate: { per_second: 0, burst: 1 },
        max_connections: 100000,
      },
      channels: [{ name: "feed", topic, deliver: "broadcast", subscribe: { allow: "anonymous" } }],
      inbound: [{ channel: "feed-in", topic, key: "none", allow: "anonymous" }],
    }),
  );
  await createTopics(config);
  const bridge = await startBridge(config);
  try {
    // Idle sessions first, offering permessage-deflate as browsers do: what each one costs.
    const rssBefore = rssKib(bridge.proc.pid);
    const idle = [];
    for (let i = 0; i < IDLE; i++) {
      const ws = await open(bridge.ws, { perMessageDeflate: true });
      ws.send(JSON.stringify({ type: "subscribe", id: "s", channel: "feed" }));
      idle.push(ws);
    }
    await waitFor(async () => (await metric(bridge, "kafka_ws_bridge_subscriptions{channel=\"feed\"}")) === IDLE, {
      timeoutMs: 60000,
      what: `${IDLE} idle sessions subscribed`,
    });
    const idleNegotiated = idle[0]?.extensions || "none";
    const rssPerIdle = (rssKib(bridge.proc.pid) - rssBefore) / IDLE;
    for (const ws of idle) ws.close();
    await waitFor(async () => (await metric(bridge, "kafka_ws_bridge_subscriptions{channel=\"feed\"}")) === 0, {
      timeoutMs: 60000,
      what: "the idle sessions gone",
    });
    let received = 0;
    let textBytes = 0;
    const sessions = [];
    for (let i = 0; i < SESSIONS; i++) {
      const ws = await open(bridge.ws, { perMessageDeflate: true });
      ws.on("message", (data) => {
        const text = data.toString();
        if (text.startsWith('{"type":"message"')) {
          received++;
          textBytes += Buffer.byteLength(text);
        }
      });
      ws.send(JSON.stringify({ type: "subscribe", id: "s", channel: "feed" }));
      sessions.push(ws);
    }
    await waitFor(async () => (await metric(bridge, "kafka_ws_bridge_subscriptions{channel=\"feed\"}")) === SESSIONS, {
      what: "every session subscribed",
    });
    const negotiated = sessions[0].extensions || "none";
    const producer = await open(bridge.ws, { perMessageDeflate: false });
    const sentBefore = await metric(bridge, "kafka_ws_bridge_sent_bytes_total");
    const deliveredBefore = await metric(bridge, 'kafka_ws_bridge_messages_delivered_total{channel="feed"}');
    const ticksBefore = cpuTicks(bridge.proc.pid);
    const started = Date.now();
    for (let n = 0; n < RECORDS; n++) {
      const due = started + (n * 1000) / RATE;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      producer.send(JSON.stringify({ type: "publish", id: n, channel: "feed-in", data: record(n) }));
    }
    await waitFor(() => received >= RECORDS * SESSIONS, {
      timeoutMs: 120000,
      intervalMs: 50,
      what: `${RECORDS * SESSIONS} deliveries (have ${received})`,
    });
    const ticks = cpuTicks(bridge.proc.pid) - ticksBefore;
    const sent = (await metric(bridge, "kafka_ws_bridge_sent_bytes_total")) - sentBefore;
    const delivered = (await metric(bridge, 'kafka_ws_bridge_messages_delivered_total{channel="feed"}')) - deliveredBefore;
    const result = {
      compression: compression ? "on" : "off",
      negotiated,
      deliveries: delivered,
      json_bytes_per_delivery: Math.round(textBytes / received),
      sent_bytes_per_delivery: Math.round(sent / delivered),
      cpu_us_per_delivery: Number(((ticks * 10000) / delivered).toFixed(2)),
      cpu_s: ticks / 100,
      rss_kib: rssKib(bridge.proc.pid),
      idle_sessions: IDLE,
      idle_negotiated: idleNegotiated,
      rss_kib_per_idle_session: Number(rssPerIdle.toFixed(1)),
    };
    for (const ws of [...sessions, producer]) ws.close();
    return result;
  } finally {
    await bridge.stop();
  }
}

console.log(`==> compression bench: ${SESSIONS} sessions, ${RECORDS} records of ~1 KiB at ${RATE}/s, bridge ${process.env.BRIDGE_BIN || "(debug build)"}`);
const results = [];
for (const compression of [false, true]) {
  const result = await measure(compression);
  console.log(JSON.stringify(result));
  results.push(result);
}
const [off, on] = results;
if (process.env.OUT) {
  writeFileSync(
    process.env.OUT,
    JSON.stringify({ sessions: SESSIONS, records: RECORDS, rate: RATE, bridge: process.env.BRIDGE_BIN || "debug", off, on }),
  );
}
console.log(
  `bytes per delivery: ${off.sent_bytes_per_delivery} off, ${on.sent_bytes_per_delivery} on (${(off.sent_bytes_per_delivery / on.sent_bytes_per_delivery).toFixed(2)}x smaller); ` +
    `bridge CPU per delivery: ${off.cpu_us_per_delivery} µs off, ${on.cpu_us_per_delivery} µs on (${(((on.cpu_us_per_delivery - off.cpu_us_per_delivery) / off.cpu_us_per_delivery) * 100).toFixed(0)}%); ` +
    `RSS per idle session: ${off.rss_kib_per_idle_session} KiB off, ${on.rss_kib_per_idle_session} KiB on (${on.idle_negotiated})`,
);
process.exit(0);

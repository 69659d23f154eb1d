// Test harness shared by the Node tests (clients/js/test) and the browser test (tests/browser):
// runs the real bridge binary against the broker in KAFKA_BOOTSTRAP. Plain Node, no dependency.
//
//   BRIDGE_BIN       the bridge binary (default: $CARGO_TARGET_DIR or target, then debug/kafka-ws-bridge, from the repo root)
//   KAFKA_BOOTSTRAP  host:port of the broker (required; scripts/test.sh starts one and sets it)
//   KWB_TEST_LOGS=1  echo the bridge's log lines to stderr
//   KWB_GROUP_PROTOCOL  `classic` or `consumer` (KIP-848): the consumer group protocol of every
//                    bridge (classic-only settings a test gives are dropped under `consumer`,
//                    which librdkafka would refuse; the broker owns the session timeout there)

import { spawn, execFile } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export function bridgeBin() {
  const target = process.env.CARGO_TARGET_DIR || "target";
  const configured = process.env.BRIDGE_BIN || join(target, "debug", "kafka-ws-bridge");
  const bin = isAbsolute(configured) ? configured : resolve(REPO_ROOT, configured);
  if (!existsSync(bin)) {
    throw new Error(
      `bridge binary not found at ${bin}: build it (cargo build) or set BRIDGE_BIN to its path`,
    );
  }
  return bin;
}

export function bootstrap() {
  const servers = process.env.KAFKA_BOOTSTRAP;
  if (!servers) {
    throw new Error(
      "KAFKA_BOOTSTRAP is not set: these tests need a Kafka broker. Run them through " +
        "scripts/test.sh (which starts one), or start one (source scripts/lib/broker.sh; " +
        "ensure_broker; start_broker DIR PORT) and export KAFKA_BOOTSTRAP=host:port",
    );
  }
  return servers;
}

/** A name no other test run uses (topics, instance ids). */
export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** A TCP port free right now on 127.0.0.1 (for a bridge that must restart on the same port). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (sync or async) until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor(check, { timeoutMs = 15000, intervalMs = 25, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** HS256 JWT. */
export function mintJwt(claims, secret) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  const signature = createHmac("sha256", secret).update(body).digest("base64url");
  return `${body}.${signature}`;
}

/**
 * A bridge config: `overrides` (channels, inbound, auth, server...) merged onto a base with
 * random instance id, ports 0 (or `port`), demo page on and quick fetches. Written as JSON,
 * which is YAML.
 */
export function makeConfig({ port = 0, instanceId = unique("kwb-js"), ...overrides } = {}) {
  const { server = {}, kafka = {}, ...rest } = overrides;
  return {
    instance_id: instanceId,
    kafka: {
      bootstrap_servers: bootstrap(),
      producer_properties: { "linger.ms": 1 },
      ...kafka,
      ...groupProtocol(kafka.consumer_properties),
    },
    server: { listen: `127.0.0.1:${port}`, demo_page: true, shutdown_timeout_ms: 3000, ...server },
    metrics: { listen: "127.0.0.1:0" },
    auth: { mode: "none" },
    ...rest,
  };
}

const CLASSIC_ONLY = ["session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy", "group.protocol.type"];

/** `consumer_properties` with the group protocol KWB_GROUP_PROTOCOL asks for (none: nothing to change). */
function groupProtocol(consumerProperties = {}) {
  const protocol = process.env.KWB_GROUP_PROTOCOL;
  if (!protocol) return {};
  const properties = { ...consumerProperties, "group.protocol": protocol };
  if (protocol === "consumer") for (const name of CLASSIC_ONLY) delete properties[name];
  return { consumer_properties: properties };
}

const tempDirs = [];
const running = new Set(); // bridge processes, killed if the test process exits first
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export function writeConfig(config) {
  const dir = mkdtempSync(join(tmpdir(), "kwb-client-test-"));
  tempDirs.push(dir);
  const file = join(dir, "bridge.yaml");
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

function run(bin, args) {
  return new Promise((resolveRun, reject) => {
    execFile(bin, args, { timeout: 60000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${bin} ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`));
      else resolveRun(stdout);
    });
  });
}

/** Creates every topic the config file names (the bridge's own `create-topics`). */
export async function createTopics(configFile) {
  await run(bridgeBin(), ["create-topics", "--config", configFile]);
}

async function httpOk(url) {
  try {
    const response = await fetch(url);
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Runs `BRIDGE_BIN run --config FILE --log-format json [args]` and waits for "bridge started"
 * and /readyz. Returns { ws, http, metrics, logs, proc, stop() }.
 */
export async function startBridge(configFile, { env = {}, args = [], readyTimeoutMs = 30000 } = {}) {
  const proc = spawn(bridgeBin(), ["run", "--config", configFile, "--log-format", "json", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(proc);
  const logs = [];
  let started = null;
  let exited = null;
  const exit = new Promise((r) =>
    proc.on("exit", (code, signal) => {
      exited = { code, signal };
      running.delete(proc);
      r(exited);
    }),
  );
  const onLine = (line) => {
    if (!line) return;
    logs.push(line);
    if (process.env.KWB_TEST_LOGS) process.stderr.write(`[bridge ${proc.pid}] ${line}\n`);
    if (!started && line.includes('"bridge started"')) {
      try {
        started = JSON.parse(line);
      } catch {
        // not JSON after all
      }
    }
  };
  for (const stream of [proc.stdout, proc.stderr]) {
    let buffered = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        onLine(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
    });
  }
  const bridge = {
    proc,
    logs,
    exit,
    async stop(signal = "SIGTERM") {
      if (exited) return exited;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15000);
      const result = await exit;
      clearTimeout(timer);
      return result;
    },
  };
  try {
    await waitFor(
      () => {
        if (exited) throw new Error(`the bridge exited (${JSON.stringify(exited)}) at start:\n${logs.join("\n")}`);
        return started;
      },
      { timeoutMs: readyTimeoutMs, what: "the bridge's start log line" },
    );
    bridge.ws = started.ws;
    bridge.metrics = started.metrics;
    bridge.http = started.ws.replace(/^ws/, "http").replace(/\/[^/]*$/, "");
    const readyz = started.metrics.replace(/\/metrics$/, "/readyz");
    await waitFor(() => httpOk(readyz), { timeoutMs: readyTimeoutMs, what: `${readyz} to answer 200` });
  } catch (e) {
    await bridge.stop("SIGKILL");
    throw e;
  }
  return bridge;
}

/** The next `event` of a client (its on()); rejects after `timeoutMs`. */
export function nextEvent(client, event, timeoutMs = 20000) {
  return new Promise((resolveEvent, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for the "${event}" event`));
    }, timeoutMs);
    const off = client.on(event, (payload) => {
      clearTimeout(timer);
      off();
      resolveEvent(payload);
    });
  });
}

/** A JSON record of about 1 KiB, like a typical business event (as tests/compression.rs): the
 * compression tests and bench/compression.mjs send it. */
export function record(n) {
  return {
    n,
    order: `ORD-${String(n).padStart(8, "0")}`,
    customer: { id: `C-${String((n * 7919) % 1000000).padStart(6, "0")}`, tier: "gold", region: "eu-west" },
    lines: [...Array(8).keys()].map((i) => ({
      sku: `SKU-${String(((n + i) * 31) % 100000).padStart(5, "0")}`,
      qty: i + 1,
      price: 12.5 + i,
      currency: "EUR",
      warehouse: "AMS-2",
    })),
    status: "confirmed",
    created_at: "2026-12-02T04:05:06.789Z",
  };
}

/** A metric sample without labels (or with the labels written out), 0 when absent. */
export async function metric(bridge, name) {
  const text = await (await fetch(bridge.metrics)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

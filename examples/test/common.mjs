// Shared by the examples' browser tests: each example's own bridge.yaml run by the real bridge
// binary (clients/js/test/harness.mjs) with random topic names (TOPIC_PREFIX) and port 0, its
// backend as a child process, its page from examples/lib/serve.mjs, and Chromium.

import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { createTopics, freePort, startBridge, unique, waitFor } from "../../clients/js/test/harness.mjs";
import { startPageServer } from "../lib/serve.mjs";

export { unique, waitFor };
export const examplesDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const artifacts = process.env.EXAMPLES_ARTIFACTS || resolve(examplesDir, "..", "target", "examples-artifacts");
mkdirSync(artifacts, { recursive: true });

const t0 = Date.now();
export function step(text) {
  console.log(`  ✓ ${text} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

/** Things to stop when a scenario ends, last started first. */
export class Scope {
  #stack = [];
  pages = [];
  defer(fn) {
    this.#stack.push(fn);
  }
  async close() {
    for (const fn of this.#stack.reverse()) {
      try {
        await fn();
      } catch {
        // keep closing
      }
    }
  }
}

/** The example's bridge.yaml with `env`: topics created, bridge started and ready. Its
 * `restart()` stops it (SIGTERM) and starts it again on the same port. */
export async function exampleBridge(scope, name, env, file = "bridge.yaml") {
  const config = join(examplesDir, name, file);
  const fullEnv = { LISTEN: `127.0.0.1:${await freePort()}`, METRICS_LISTEN: "127.0.0.1:0", ...env };
  // create-topics reads the same file, so it needs the same environment.
  const saved = { ...process.env };
  Object.assign(process.env, fullEnv);
  try {
    await createTopics(config);
  } finally {
    for (const k of Object.keys(fullEnv)) if (saved[k] === undefined) delete process.env[k];
    Object.assign(process.env, saved);
  }
  let bridge = await startBridge(config, { env: fullEnv });
  const handle = {
    ws: bridge.ws,
    http: bridge.http,
    get metrics() {
      return bridge.metrics;
    },
    stop: () => bridge.stop(),
    async start() {
      bridge = await startBridge(config, { env: fullEnv });
    },
  };
  scope.defer(() => bridge.stop());
  return handle;
}

/** Starts `node examples/<name>/<script>` and waits for its `ready` line; returns { lines, proc, stop }. */
export async function startBackend(scope, name, env, script = "backend.mjs") {
  const proc = spawn(process.execPath, [join(examplesDir, name, script)], {
    env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = [];
  let exited = null;
  proc.on("exit", (code, signal) => (exited = { code, signal }));
  for (const stream of [proc.stdout, proc.stderr]) {
    let buffered = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => {
      buffered += chunk;
      let i;
      while ((i = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        lines.push(line);
        if (process.env.KWB_TEST_LOGS) process.stderr.write(`[${name} ${script}] ${line}\n`);
      }
    });
  }
  const stop = async () => {
    if (exited) return;
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await new Promise((r) => (exited ? r() : proc.on("exit", r)));
    clearTimeout(timer);
  };
  scope.defer(stop);
  await waitFor(
    () => {
      if (exited) throw new Error(`${name}/${script} exited at start (${JSON.stringify(exited)}):\n${lines.join("\n")}`);
      return lines.includes("ready");
    },
    { timeoutMs: 30000, what: `${name}/${script} to be ready` },
  );
  return { proc, lines, stop };
}

export async function pageServer(scope, name) {
  const server = await startPageServer(name);
  scope.defer(() => server.close());
  return server;
}

/** A new browser context (its own cookies and storage: another browser, as far as the page
 * knows) with one page; uncaught page errors are collected in `errors`. */
export async function newPage(scope, browser, errors, { width = 1200, height = 700 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  scope.defer(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => errors.push(e));
  page.on("console", (m) => {
    // Chromium logs each refused reconnect attempt while a bridge restarts: expected there.
    if (m.type() === "error" && !/^WebSocket connection to .* net::ERR_CONNECTION_REFUSED$/.test(m.text())) {
      errors.push(new Error(`console: ${m.text()}`));
    }
  });
  scope.pages.push(page);
  return page;
}

export async function screenshot(page, file) {
  const path = join(artifacts, file);
  await page.screenshot({ path, fullPage: true });
  return path;
}

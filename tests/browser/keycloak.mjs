// Keycloak in Debian's Chromium (playwright-core): the JS client's `getToken` fed by Keycloak's
// own JS adapter (keycloak-js), against a real Keycloak, bridge and broker. The realm and the
// bridge's auth and channels are docs/auth.md's Keycloak walk-through, read from that page
// (only addresses, names and lifetimes replaced), so its step 4 — "a page gets its token through
// the authorization-code flow (keycloak-js) and hands it to the client's getToken" — is tested:
//   1. The page (tests/browser/keycloak-page.html) calls keycloak.init({onLoad: "login-required",
//      pkceMethod: "S256"}): Chromium lands on Keycloak's login page, the test types alice's
//      password, Keycloak redirects back with a code, keycloak-js redeems it (PKCE).
//   2. The page connects through clients/js with getToken (keycloak.updateToken(30), then
//      keycloak.token): `welcome` names alice, her balance produced by the test arrives, bob's
//      key and the supervisors' channel are refused `forbidden`.
//   3. The realm's access tokens live 12 s and the bridge warns 6 s before `exp`: the client
//      calls getToken, keycloak-js refreshes with the refresh_token grant, the client sends it
//      in-band and gets `refreshed` — no reconnect.
//   4. The bridge restarts: the client reconnects with a token from getToken and receives again.
//
//   KAFKA_BOOTSTRAP (required), BRIDGE_BIN, CHROMIUM as for run.mjs; KWB_KEYCLOAK_URL: a
//   Keycloak whose master admin is admin/admin (else one is started with
//   scripts/keycloak/keycloak.sh, fetched and given its first start by `keycloak.sh ensure`).
// Run: node tests/browser/keycloak.mjs   (after tests/browser/setup.sh)

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { bootstrap, createTopics, freePort, startBridge, unique, waitFor } from "../../clients/js/test/harness.mjs";
import { browserTest, launchChromium } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const artifacts = join(here, "artifacts");
const test = browserTest("Keycloak browser test", 240000);
const { cleanup, step } = test;

/** The first ``` block of `lang` after `marker` in docs/auth.md, its indentation removed. */
function docBlock(marker, lang) {
  const doc = readFileSync(join(root, "docs/auth.md"), "utf8");
  const at = doc.indexOf(marker);
  assert.ok(at >= 0, `docs/auth.md has no "${marker}"`);
  const open = doc.indexOf("```" + lang + "\n", at);
  const close = doc.indexOf("```", open + 3 + lang.length);
  const lines = doc.slice(open + 4 + lang.length, close).split("\n");
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
  return lines.map((l) => l.slice(indent)).join("\n");
}

/** `text` with each [from, to] replaced everywhere; fails when a `from` is not in it. */
function replaced(text, pairs) {
  for (const [from, to] of pairs) {
    assert.ok(text.includes(from), `expected ${JSON.stringify(from)} in:\n${text}`);
    text = text.split(from).join(to);
  }
  return text;
}

function run(file, args) {
  return new Promise((resolve, reject) =>
    execFile(file, args, { timeout: 600000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${file} ${args.join(" ")}: ${error.message}\n${stdout}${stderr}`)) : resolve(stdout.trim()),
    ),
  );
}

/** KWB_KEYCLOAK_URL, or a Keycloak started for this test (stopped by the cleanup). */
async function keycloak() {
  if (process.env.KWB_KEYCLOAK_URL) return process.env.KWB_KEYCLOAK_URL.replace(/\/$/, "");
  const script = join(root, "scripts/keycloak/keycloak.sh");
  await run(script, ["ensure"]);
  const dir = mkdtempSync(join(tmpdir(), "kwb-keycloak-browser-"));
  const started = Date.now();
  const url = await run(script, ["start", dir, String(await freePort()), "--owner", String(process.pid)]);
  cleanup.push(async () => {
    await run(script, ["stop", dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  step(`Keycloak started at ${url} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return url;
}

async function adminToken(kc) {
  const response = await fetch(`${kc}/realms/master/protocol/openid-connect/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "password", client_id: "admin-cli", username: "admin", password: "admin" }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).access_token;
}

/** Serves the page, keycloak-js and the bridge's JS client on 127.0.0.1:`port`. */
function pageServer(port) {
  const files = {
    "/": ["text/html", join(here, "keycloak-page.html")],
    "/keycloak.js": ["text/javascript", join(here, "node_modules/keycloak-js/lib/keycloak.js")],
    "/client.js": ["text/javascript", join(root, "clients/js/kafka-ws-bridge.js")],
  };
  const server = createServer((request, response) => {
    const file = files[new URL(request.url, "http://x").pathname];
    if (!file) return response.writeHead(404).end();
    response.writeHead(200, { "content-type": file[0], "cache-control": "no-store" }).end(readFileSync(file[1]));
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

async function main() {
  bootstrap();
  console.log(`==> Keycloak browser test, broker ${process.env.KAFKA_BOOTSTRAP}`);
  const kc = await keycloak();

  // The page's origin, then the walk-through's realm with its client's redirect URIs and web
  // origins at that origin, and access tokens of 12 s.
  const pagePort = await freePort();
  const origin = `http://127.0.0.1:${pagePort}`;
  const server = await pageServer(pagePort);
  cleanup.push(() => new Promise((r) => server.close(r)));
  const realmName = unique("bank-browser");
  const realm = replaced(docBlock("`bank-realm.json`:", "json"), [
    ['"realm": "bank"', `"realm": "${realmName}"`],
    ["http://localhost:8000", origin],
    ['"accessTokenLifespan": 300', '"accessTokenLifespan": 12'],
  ]);
  const created = await fetch(`${kc}/admin/realms`, {
    method: "POST",
    headers: { authorization: `Bearer ${await adminToken(kc)}`, "content-type": "application/json" },
    body: realm,
  });
  assert.equal(created.status, 201, await created.text());
  cleanup.push(async () =>
    fetch(`${kc}/admin/realms/${realmName}`, { method: "DELETE", headers: { authorization: `Bearer ${await adminToken(kc)}` } }),
  );

  // The walk-through's bridge config, on this Keycloak and fresh topics; an API key for the
  // test to write balances.
  const apiKey = `key-${unique("k")}-0123456789abcdef`;
  const walkthrough = replaced(docBlock("3. **The bridge.**", "yaml"), [
    ["http://localhost:8180", kc],
    ["/realms/bank", `/realms/${realmName}`],
    ["account-balances", unique("kc-balances")],
    ["risk-alerts", unique("kc-alerts")],
    // No leeway: the session's token ends at its `exp`, and the warning comes 6 s before.
    ["auth:\n", "auth:\n  refresh_warning_s: 6\n"],
    ["  jwt:\n", "  jwt:\n    leeway_seconds: 0\n"],
  ]);
  const dir = mkdtempSync(join(tmpdir(), "kwb-keycloak-page-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const configFile = join(dir, "bridge.yaml");
  writeFileSync(
    configFile,
    `instance_id: ${unique("kc-browser")}\n` +
      `kafka: {bootstrap_servers: '${bootstrap()}'}\n` +
      `server: {listen: '127.0.0.1:${await freePort()}', allowed_origins: ['${origin}'], api_keys: ['${apiKey}'], shutdown_timeout_ms: 3000}\n` +
      `metrics: {listen: '127.0.0.1:0'}\n` +
      walkthrough,
  );
  await createTopics(configFile);
  let bridge = await startBridge(configFile);
  cleanup.push(() => bridge.stop());
  step(`realm ${realmName} from docs/auth.md, page at ${origin}, bridge at ${bridge.ws} (ready: Keycloak's keys found by discovery)`);

  const publish = async (balance) => {
    const response = await fetch(`${bridge.http}/api/v1/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ channel: "balances", key: "alice", data: { balance } }),
    });
    assert.equal(response.status, 202, await response.text());
  };

  const browser = await launchChromium();
  cleanup.push(() => browser.close());
  const page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e));
  page.setDefaultTimeout(30000);
  // What the page logged; nothing while on Keycloak's pages or between two (a navigation
  // destroys the context being evaluated in).
  const events = () =>
    page
      .evaluate(() => (location.origin === window.origin && Array.isArray(window.events) ? window.events : []))
      .catch(() => []);
  const waitEvent = async (what, predicate) => {
    try {
      return await waitFor(async () => (await events()).find(predicate), { timeoutMs: 30000, what: `the page: ${what}` });
    } catch (e) {
      throw new Error(`${e.message}; the page logged: ${JSON.stringify(await events())}`);
    }
  };

  // 1. Keycloak's login page, in the browser.
  const pageUrl = `${origin}/?kc=${encodeURIComponent(kc)}&realm=${realmName}&bridge=${encodeURIComponent(bridge.ws)}`;
  await page.goto(pageUrl);
  await page.waitForSelector("#username");
  assert.ok(page.url().startsWith(`${kc}/realms/${realmName}/protocol/openid-connect/auth?`), page.url());
  const authorize = new URL(page.url()).searchParams;
  assert.equal(authorize.get("code_challenge_method"), "S256");
  assert.equal(authorize.get("client_id"), "bridge-web");
  await page.fill("#username", "alice");
  await page.fill("#password", "alice-password");
  await page.click("#kc-login");
  const signedIn = await waitEvent("signed in", (e) => e.type === "signed_in");
  assert.ok(page.url().startsWith(origin), page.url());
  step(`Chromium signed in on Keycloak's login page (authorization code + PKCE S256) as ${signedIn.user}`);

  // 2. The session, through getToken.
  const open = await waitEvent("the session open", (e) => e.type === "open");
  assert.equal(open.user, "alice");
  await publish(42);
  await waitEvent("alice's balance", (e) => e.type === "balance" && e.balance === 42);
  await waitEvent("bob's key refused", (e) => e.type === "refused" && e.key === "bob" && e.code === "forbidden");
  await waitEvent("alerts refused", (e) => e.type === "refused" && e.channel === "alerts" && e.code === "forbidden");
  step("session opened with getToken's token (user alice); her balance arrived; bob's key and `alerts` forbidden");

  // 3. In-band refresh: token_expiring → getToken → keycloak-js refresh_token grant → refresh.
  const refreshed = await waitEvent("an in-band refresh", (e) => e.type === "token_refreshed");
  let log = await events();
  const tokens = log.filter((e) => e.type === "get_token");
  assert.ok(tokens.length >= 2, JSON.stringify(log));
  assert.ok(tokens[1].exp > tokens[0].exp, `a newer token: ${JSON.stringify(tokens)}`);
  assert.ok(tokens[1].iat > tokens[0].iat, `issued anew by Keycloak: ${JSON.stringify(tokens)}`);
  assert.ok(
    log.some((e) => e.type === "keycloak_refreshed" && e.at >= tokens[0].at && e.at <= tokens[1].at),
    `keycloak-js refreshed (refresh_token grant) inside that getToken: ${JSON.stringify(log)}`,
  );
  assert.equal(refreshed.expiresAt, tokens[1].exp * 1000, "the bridge took the refreshed token's exp");
  assert.equal(log.filter((e) => e.type === "open").length, 1, "no reconnect");
  step(`token_expiring → getToken → keycloak-js refresh (exp ${tokens[0].exp} → ${tokens[1].exp}) → refreshed in-band, same session`);

  // 4. The bridge restarts: reconnect with a token from getToken.
  await bridge.stop();
  bridge = await startBridge(configFile);
  const reopened = await waitEvent("the session reopened", (e) => e.type === "open" && e.at > refreshed.at);
  assert.equal(reopened.user, "alice");
  log = await events();
  assert.ok(
    log.some((e) => e.type === "get_token" && e.at > refreshed.at && e.at <= reopened.at),
    `getToken called for the reconnect: ${JSON.stringify(log)}`,
  );
  await publish(43);
  await waitEvent("alice's balance after the restart", (e) => e.type === "balance" && e.balance === 43);
  assert.deepEqual(
    log.filter((e) => e.type === "client_error" && e.code === "token"),
    [],
    "getToken never failed",
  );
  assert.deepEqual(pageErrors.map(String), []);
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, "keycloak.png"), fullPage: true });
  step("bridge restarted: reconnected with a token from getToken, balance received again");
  console.log(`==> Keycloak browser test passed in ${test.elapsed()} s`);
}

await test.run(main);

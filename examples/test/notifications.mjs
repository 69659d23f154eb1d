// Notifications relay in Chromium, on two relay instances sharing one Kafka and nothing else:
// an HTTP push to instance A reaches a user connected to B (and only that user); an
// announcement through B reaches everyone; an action a browser sends through A reaches the
// Kafka-speaking worker with the bridge's user header, and the worker's answer reaches both of
// that user's tabs — one on each instance.

import assert from "node:assert/strict";
import { exampleBridge, newPage, pageServer, screenshot, startBackend, step, unique, waitFor } from "./common.mjs";
import { mintToken } from "../lib/tokens.mjs";
import { push } from "../notifications/push.mjs";

async function sessionsOpen(bridge) {
  const text = await (await fetch(bridge.metrics)).text();
  const line = text.split("\n").find((l) => l.startsWith("kafka_ws_bridge_sessions_open"));
  return Number(line?.split(" ").at(-1));
}

export async function notificationsTest(browser, scope) {
  const secret = `notify-test-${unique("secret")}-0123456789abcdef`;
  const apiKey = unique("api-key");
  const prefix = `${unique("ex-notify")}.`;
  const site = await pageServer(scope, "notifications");
  const env = { TOPIC_PREFIX: prefix, NOTIFY_JWT_SECRET: secret, NOTIFY_API_KEY: apiKey, PAGE_ORIGIN: site.url };
  const a = await exampleBridge(scope, "notifications", { ...env, INSTANCE_ID: unique("relay-a") });
  const b = await exampleBridge(scope, "notifications", { ...env, INSTANCE_ID: unique("relay-b") });
  const worker = await startBackend(scope, "notifications", { TOPIC_PREFIX: prefix }, "worker.mjs");
  step(`notifications: relay A ${a.ws}, relay B ${b.ws}, worker up`);

  const errors = [];
  const open = async (user, bridge) => {
    const page = await newPage(scope, browser, errors, { width: 1200, height: 500 });
    await page.goto(`${site.url}/?bridge=${encodeURIComponent(bridge.ws)}#token=${await mintToken(secret, user)}`);
    await page.waitForSelector("body[data-state=open]");
    return page;
  };
  const alice = await open("alice", a);
  const bob = await open("bob", b);
  const aliceOnB = await open("alice", b); // alice's second tab, on the other instance
  await waitFor(async () => (await sessionsOpen(a)) === 1 && (await sessionsOpen(b)) === 2, { what: "1 session on A, 2 on B" });
  step("notifications: alice on A, bob on B, alice's second tab on B");

  // A backend pushes over HTTP to instance A for bob, who is connected to B only.
  const written = await push(a.http, apiKey, "bob", "Your report is ready");
  assert.equal(written.topic, `${prefix}notify.user`);
  await bob.waitForSelector(`#notifications li[data-kind=push][data-offset="${written.partition}:${written.offset}"]:has-text('Your report is ready')`);
  step(`notifications: HTTP push to A for bob (partition ${written.partition} offset ${written.offset}) reached bob on B`);

  // An announcement through B reaches every session on both instances.
  await push(b.http, apiKey, null, "Maintenance at 22:00");
  for (const page of [alice, bob, aliceOnB]) await page.waitForSelector("#announcements li:has-text('Maintenance at 22:00')");
  step("notifications: an announcement pushed to B reached all three sessions on both instances");

  // alice sends an action through A: the worker reads it from Kafka and answers her.
  await alice.fill("#action [name=name]", "export-statement");
  await alice.click("#action button");
  const sent = await alice.waitForSelector("#sent li[data-acked]");
  const id = await sent.getAttribute("data-id");
  const [partition, offset] = (await sent.getAttribute("data-acked")).split(":").map(Number);
  const handled = await waitFor(
    () => worker.lines.filter((l) => l.startsWith("action ")).map((l) => JSON.parse(l.slice(7))).find((x) => x.correlationId === id),
    { what: "the worker to read the action" },
  );
  assert.equal(handled.user, "alice", "bridge-user header from alice's token");
  assert.deepEqual(handled.action, { name: "export-statement" });
  assert.deepEqual([handled.partition, handled.offset], [partition, offset], "the worker read the record the ack named");
  for (const page of [alice, aliceOnB]) {
    await page.waitForSelector(`#notifications li[data-kind=action-done][data-correlation-id="${id}"]:has-text('export-statement')`);
  }
  step("notifications: alice's action (acked at partition " + `${partition} offset ${offset}) reached the worker as alice; its answer reached both her tabs`);

  // Nothing leaked to the wrong user.
  assert.equal(await alice.locator("#notifications li[data-kind=push]").count(), 0, "alice did not get bob's push");
  assert.equal(await bob.locator("#notifications li[data-kind=action-done]").count(), 0, "bob did not get alice's answer");
  // A wrong API key is refused.
  await assert.rejects(push(a.http, "wrong-key", "bob", "x"), /401/);
  await screenshot(aliceOnB, "notifications-alice.png");
  await screenshot(bob, "notifications-bob.png");
  assert.deepEqual(errors.map(String), [], "no uncaught error in the pages");
}

// Notifications relay in Chromium, the page speaking STOMP 1.2 through @stomp/stompjs with
// Spring's destinations, on two relay instances sharing one Kafka and nothing else: an HTTP
// push to instance A reaches a user connected to B as a STOMP MESSAGE on
// /user/queue/notifications (and only that user); an announcement through B reaches everyone on
// /topic/announcements; a SEND to /app/actions through A (and one through B) reaches the
// Kafka-speaking worker with the bridge's user header and the receipt as correlation-id, the
// RECEIPT reaches the page, and the worker's answer reaches all of that user's tabs — one on
// each instance.

import assert from "node:assert/strict";
import { exampleBridge, newPage, pageServer, screenshot, startBackend, step, unique, waitFor } from "./common.mjs";
import { mintToken } from "../lib/tokens.mjs";
import { push } from "../notifications/push.mjs";

async function sessionsOpen(bridge) {
  const text = await (await fetch(bridge.metrics)).text();
  // Every transport's series (websocket, stomp, sse), summed.
  return text
    .split("\n")
    .filter((l) => /^kafka_ws_bridge_sessions_open(\{| )/.test(l))
    .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
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
  // What each page's WebSocket carried, as Chromium saw it: proof that the page spoke STOMP.
  const wire = new Map();
  const open = async (user, bridge) => {
    const page = await newPage(scope, browser, errors, { width: 1200, height: 500 });
    const frames = { sent: [], received: [] };
    wire.set(page, frames);
    page.on("websocket", (ws) => {
      ws.on("framesent", (f) => frames.sent.push(String(f.payload)));
      ws.on("framereceived", (f) => frames.received.push(String(f.payload)));
    });
    await page.goto(`${site.url}/?bridge=${encodeURIComponent(bridge.ws)}#token=${await mintToken(secret, user)}`);
    await page.waitForSelector("body[data-state=open]");
    assert.equal(await page.getAttribute("body", "data-stomp"), "1.2", "CONNECTED with version 1.2");
    assert.equal(await page.textContent("#who"), user, "CONNECTED's user-name is the token's subject");
    assert.ok(frames.sent[0]?.startsWith("CONNECT\n"), `the first frame is STOMP's CONNECT: ${JSON.stringify(frames.sent[0]?.slice(0, 40))}`);
    await wired(page, "received", "CONNECTED", `user-name:${user}`);
    return page;
  };
  // A frame `page` sent or received with that command and those header lines (Chromium reports
  // frames a moment after the page has them: wait, with a deadline).
  const wired = (page, direction, command, ...lines) =>
    waitFor(() => wire.get(page)[direction].find((f) => f.startsWith(`${command}\n`) && lines.every((l) => f.includes(`\n${l}\n`))), {
      what: `a ${command} frame ${direction} with ${lines.join(", ")}`,
    });
  // A SEND through `page`'s relay: the RECEIPT on the page, the record at the worker.
  const sendAction = async (page, user, name) => {
    await page.fill("#action [name=name]", name);
    await page.click("#action button");
    const li = await page.waitForSelector(`#sent li[data-acked]:has-text('${name}')`);
    const receipt = await li.getAttribute("data-receipt");
    await wired(page, "sent", "SEND", "destination:/app/actions", `receipt:${receipt}`);
    await wired(page, "received", "RECEIPT", `receipt-id:${receipt}`);
    const handled = await waitFor(
      () => worker.lines.filter((l) => l.startsWith("action ")).map((l) => JSON.parse(l.slice(7))).find((x) => x.correlationId === receipt),
      { what: `the worker to read ${user}'s action` },
    );
    assert.equal(handled.user, user, "bridge-user header from the token");
    assert.deepEqual(handled.action, { name });
    assert.ok(handled.session, "bridge-session header set");
    return receipt;
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
  await wired(bob, "received", "MESSAGE", "destination:/user/queue/notifications", `kafka-partition:${written.partition}`, `kafka-offset:${written.offset}`, "kafka-key:bob");
  step(`notifications: HTTP push to A for bob (partition ${written.partition} offset ${written.offset}) reached bob on B`);

  // An announcement through B reaches every session on both instances.
  await push(b.http, apiKey, null, "Maintenance at 22:00");
  for (const page of [alice, bob, aliceOnB]) {
    await page.waitForSelector("#announcements li:has-text('Maintenance at 22:00')");
    await wired(page, "received", "MESSAGE", "destination:/topic/announcements");
  }
  step("notifications: an announcement pushed to B reached all three sessions on both instances");

  // alice sends an action through A: the worker reads it from Kafka and answers her.
  const id = await sendAction(alice, "alice", "export-statement");
  for (const page of [alice, aliceOnB]) {
    await page.waitForSelector(`#notifications li[data-kind=action-done][data-correlation-id="${id}"]:has-text('export-statement')`);
  }
  step(`notifications: alice's SEND /app/actions through A got its RECEIPT (${id}), reached the worker as alice; its answer reached both her tabs`);

  // bob sends through B: the second instance takes SENDs as well.
  const bobId = await sendAction(bob, "bob", "mute-weekends");
  await bob.waitForSelector(`#notifications li[data-kind=action-done][data-correlation-id="${bobId}"]:has-text('mute-weekends')`);
  step(`notifications: bob's SEND through B got its RECEIPT (${bobId}), reached the worker as bob; its answer reached him`);

  // Relay B restarts (a deploy): stompjs reconnects, and the page's `resume` header brings what
  // was pushed meanwhile, and nothing bob already had.
  await b.stop();
  await bob.waitForSelector("body[data-state=reconnecting]");
  const missed = await push(a.http, apiKey, "bob", "Pushed while B was down");
  await b.start();
  await bob.waitForSelector("body[data-state=open]");
  await bob.waitForSelector(`#notifications li[data-offset="${missed.partition}:${missed.offset}"]:has-text('Pushed while B was down')`);
  const resubscribed = wire.get(bob).sent.filter((f) => f.startsWith("SUBSCRIBE\n") && f.includes("\ndestination:/user/queue/notifications\n"));
  assert.equal(resubscribed.length, 2, "bob subscribed once per connection");
  // (STOMP 1.2 escapes `:` in header values as `\c`.)
  assert.match(resubscribed[1], /\nresume:\d+\\c\d+(,\d+\\c\d+)*\n/, `the second SUBSCRIBE resumes where the first stopped: ${JSON.stringify(resubscribed[1])}`);
  const firstPush = (f) =>
    f.startsWith("MESSAGE\n") &&
    [`destination:/user/queue/notifications`, `kafka-partition:${written.partition}`, `kafka-offset:${written.offset}`].every((l) => f.includes(`\n${l}\n`));
  assert.equal(wire.get(bob).received.filter(firstPush).length, 1, "the push bob had before the restart was not sent again");
  await aliceOnB.waitForSelector("body[data-state=open]");
  step(`notifications: relay B restarted; bob's stompjs reconnected and resumed: the push sent meanwhile (offset ${missed.offset}) arrived, nothing twice`);

  // Nothing leaked to the wrong user.
  assert.equal(await alice.locator("#notifications li[data-kind=push]").count(), 0, "alice did not get bob's push");
  assert.equal(await bob.locator(`#notifications li[data-kind=action-done][data-correlation-id="${id}"]`).count(), 0, "bob did not get alice's answer");
  for (const page of [alice, aliceOnB]) {
    assert.equal(await page.locator(`#notifications li[data-correlation-id="${bobId}"]`).count(), 0, "alice did not get bob's answer");
  }
  // A wrong API key is refused.
  await assert.rejects(push(a.http, "wrong-key", "bob", "x"), /401/);
  await screenshot(aliceOnB, "notifications-alice.png");
  await screenshot(bob, "notifications-bob.png");
  assert.deepEqual(errors.map(String), [], "no uncaught error in the pages");
}

// Chat in Chromium: alice writes to bob, whose two open tabs both get it (carol does not);
// bob logs out, alice and carol write while he is away; bob logs in again in the same browser
// and gets exactly what he missed, in order, none twice, after what he had; on a new device he
// gets the whole conversation. A message to an unknown user is refused to the sending tab.

import assert from "node:assert/strict";
import { exampleBridge, newPage, pageServer, screenshot, startBackend, step, unique, waitFor } from "./common.mjs";
import { mintToken } from "../lib/tokens.mjs";

export async function chatTest(browser, scope) {
  const secret = `chat-test-${unique("secret")}-0123456789abcdef`;
  const prefix = `${unique("ex-chat")}.`;
  const site = await pageServer(scope, "chat");
  const bridge = await exampleBridge(scope, "chat", { TOPIC_PREFIX: prefix, CHAT_JWT_SECRET: secret, PAGE_ORIGIN: site.url, INSTANCE_ID: unique("chat") });
  await startBackend(scope, "chat", { TOPIC_PREFIX: prefix, CHAT_USERS: "alice,bob,carol" });
  step(`chat: bridge ${bridge.ws} and backend up`);

  const errors = [];
  const url = async (user) => `${site.url}/?bridge=${encodeURIComponent(bridge.ws)}#token=${await mintToken(secret, user)}`;
  const contexts = {};
  async function login(user, device = user) {
    if (!contexts[device]) {
      const first = await newPage(scope, browser, errors, { width: 900, height: 700 });
      contexts[device] = first.context();
      await first.goto(await url(user));
      await first.waitForSelector("body[data-state=open]");
      return first;
    }
    const page = await contexts[device].newPage(); // another tab of the same browser
    page.setDefaultTimeout(20000);
    page.on("pageerror", (e) => errors.push(e));
    scope.pages.push(page);
    await page.goto(await url(user));
    await page.waitForSelector("body[data-state=open]");
    return page;
  }
  const timeline = (page) => page.$$eval("#timeline li", (lis) => lis.map((li) => ({ id: li.dataset.id, from: li.dataset.from, text: li.lastChild.textContent, how: li.dataset.how })));
  const written = []; // { id, from, text } in the order the backend wrote them to bob's key
  async function send(page, to, text) {
    const before = await page.getAttribute("#compose", "data-last-client-id");
    await page.fill("#compose [name=to]", to);
    await page.fill("#compose [name=text]", text);
    await page.click("#compose button");
    await page.waitForFunction((b) => document.querySelector("#compose").dataset.lastClientId !== b, before);
    const clientId = await page.getAttribute("#compose", "data-last-client-id");
    const receipt = await page.waitForSelector(`#receipts li[data-client-id="${clientId}"]`);
    return { status: await receipt.getAttribute("data-status"), text: await receipt.textContent() };
  }

  const alice = await login("alice");
  const bob1 = await login("bob");
  const bob2 = await login("bob"); // a second tab of bob's browser
  const carol = await login("carol");
  assert.equal((await send(alice, "bob", "hi bob")).status, "delivered");
  written.push({ from: "alice", text: "hi bob" });
  for (const page of [bob1, bob2]) await page.waitForSelector("#timeline li.in[data-from=alice]:has-text('hi bob')");
  await alice.waitForSelector("#timeline li.out:has-text('hi bob')"); // alice's own `sent` feed
  step("chat: alice → bob reached both of bob's tabs (and alice's sent feed)");

  // bob logs out (closes both tabs); alice and carol write meanwhile.
  await bob1.close();
  await bob2.close();
  for (const [page, from, text] of [[alice, "alice", "are you there?"], [carol, "carol", "lunch at 1?"], [alice, "alice", "call me"], [alice, "alice", "🙂 ok, later"]]) {
    assert.equal((await send(page, "bob", text)).status, "delivered");
    written.push({ from, text });
  }
  step("chat: bob logged out; alice and carol sent him 4 messages");

  // bob logs in again in the same browser: what he had, then exactly what he missed.
  const back = await login("bob");
  await back.waitForSelector("#away[data-replayed='4']");
  await waitFor(async () => (await timeline(back)).length >= written.length, { what: `${written.length} messages on bob's page` });
  const seen = await timeline(back);
  assert.deepEqual(seen.map(({ from, text }) => ({ from, text })), written, "in order, each once");
  assert.deepEqual(seen.map((m) => m.how), ["stored", "live", "live", "live", "live"], "the first from this browser's store, the rest resumed");
  assert.equal(new Set(seen.map((m) => m.id)).size, seen.length, "no message twice");
  step("chat: bob back in the same browser: 1 stored + exactly the 4 he missed, in order, none twice");
  await screenshot(back, "chat-bob-back.png");

  // Live again, and nothing older comes back late.
  assert.equal((await send(carol, "bob", "see you")).status, "delivered");
  written.push({ from: "carol", text: "see you" });
  await back.waitForSelector("#timeline li.in[data-from=carol]:has-text('see you')");
  assert.equal((await timeline(back)).length, written.length);

  // A new device: no store, so the conversation comes as history.
  const phone = await login("bob", "bob-phone");
  await waitFor(async () => (await timeline(phone)).length >= written.length, { what: "bob's conversation on a new device" });
  assert.deepEqual((await timeline(phone)).map(({ from, text }) => ({ from, text })), written);
  step("chat: bob on a new device gets the whole conversation (history), in order");

  // Refused to the sending tab only.
  const refused = await send(alice, "mallory", "psst");
  assert.equal(refused.status, "refused");
  assert.match(refused.text, /no user "mallory"/);
  assert.equal(await carol.locator("#receipts li.refused").count(), 0);
  assert.deepEqual((await timeline(carol)).map((m) => m.text), ["lunch at 1?", "see you"], "carol's page: only what she sent");
  await screenshot(alice, "chat-alice.png");
  assert.deepEqual(errors.map(String), [], "no uncaught error in the pages");
}

// Bank example in Chromium: a customer's two micro-frontends (accounts snapshot, transfer,
// live transaction list); a failing command whose error reaches only the session that sent
// it; a malformed command refused; staff on a second instance acting for an assigned customer
// (and refused for another — by the bridge, from the token's claim); the customer's bridge
// restarting while the staff act (the page resumes without a reload); one session per user and
// micro-frontend across the two instances: another browser's Transactions closes this one's
// (4000) and leaves its Accounts live, until that browser opens Accounts too.

import assert from "node:assert/strict";
import { exampleBridge, newPage, pageServer, screenshot, startBackend, step, unique, waitFor } from "./common.mjs";
import { metric } from "../../clients/js/test/harness.mjs";
import { mintToken } from "../lib/tokens.mjs";

export async function bankTest(browser, scope) {
  const secret = `bank-test-${unique("secret")}-0123456789abcdef`;
  const prefix = `${unique("ex-bank")}.`;
  const site = await pageServer(scope, "bank");
  const env = { TOPIC_PREFIX: prefix, BANK_JWT_SECRET: secret, PAGE_ORIGIN: site.url };
  const bridge = await exampleBridge(scope, "bank", { ...env, INSTANCE_ID: unique("bank-a") });
  // A second instance of the same config, as behind a load balancer: the staff use it.
  const bridge2 = await exampleBridge(scope, "bank", { ...env, INSTANCE_ID: unique("bank-b") });
  await startBackend(scope, "bank", { TOPIC_PREFIX: prefix });
  step(`bank: backend, two bridges (${bridge.ws}, ${bridge2.ws}) and page (${site.url}/) up`);

  const customer = await mintToken(secret, "C-1");
  const staff = await mintToken(secret, "S-1", { roles: ["staff"], claims: { customers: ["C-1", "C-3"] } });
  const url = (token, via = bridge, mfe = null) =>
    `${site.url}/?bridge=${encodeURIComponent(via.ws)}${mfe ? `&mfe=${mfe}` : ""}#token=${token}`;
  const errors = [];
  const balances = (page) =>
    page.$$eval("#accounts-mfe tbody tr", (rows) => Object.fromEntries(rows.map((r) => [r.dataset.account, Number(r.querySelector(".balance").textContent)])));

  // --- a customer: both micro-frontends connected, each its own session ---
  const a = await newPage(scope, browser, errors);
  await a.goto(url(customer));
  await a.waitForSelector("#accounts-mfe[data-state=open]");
  await a.waitForSelector("#transactions-mfe[data-state=open]");
  await a.waitForSelector("#accounts-mfe tbody tr[data-account='C-1-CHK']");
  const sessions = await a.$$eval(".mfe", (s) => s.map((x) => x.dataset.session));
  assert.equal(new Set(sessions).size, 2, `two sessions, one per micro-frontend: ${sessions}`);
  const start = await balances(a);
  assert.deepEqual(Object.keys(start).sort(), ["C-1-CHK", "C-1-SAV"]);
  step(`bank: customer C-1 signed in; RetrieveAccountsCmd → AccountListUpdated ${JSON.stringify(start)}`);

  // A transfer: the transaction appears in Transactions, the balances change in Accounts.
  async function transfer(page, from, to, amount) {
    await page.fill("#transactions-mfe [name=from]", from);
    await page.fill("#transactions-mfe [name=to]", to);
    await page.fill("#transactions-mfe [name=amount]", String(amount));
    const before = await page.getAttribute("#transactions-mfe form", "data-last-command");
    await page.click("#transactions-mfe form button");
    await page.waitForFunction((b) => document.querySelector("#transactions-mfe form").dataset.lastCommand !== b, before);
    return page.getAttribute("#transactions-mfe form", "data-last-command");
  }
  await transfer(a, "C-1-CHK", "C-1-SAV", 250);
  await a.waitForSelector("#transactions-mfe .list li");
  await waitFor(async () => (await balances(a))["C-1-CHK"] === start["C-1-CHK"] - 250, { what: "the new CHK balance" });
  assert.equal((await balances(a))["C-1-SAV"], start["C-1-SAV"] + 250);
  assert.match(await a.textContent("#transactions-mfe .list li"), /250\.00 C-1-CHK → C-1-SAV \(by C-1\)/);
  step("bank: TransferCmd → TransactionRecorded in Transactions and AccountListUpdated in Accounts, live");

  // A command the backend refuses: the error (on the error topic, with the command's
  // correlation id) reaches the Transactions session only — not the Accounts session of the
  // same user, nor the staff.
  const st = await newPage(scope, browser, errors);
  await st.goto(url(staff, bridge2));
  await st.waitForSelector("#accounts-mfe[data-state=open]");
  const failing = await transfer(a, "C-1-CHK", "C-1-SAV", 1e9);
  const err = await a.waitForSelector(`#transactions-mfe .errors li[data-correlation-id="${failing}"]`);
  assert.match(await err.textContent(), /TransferCmd: C-1-CHK holds \d+, less than 1000000000/);
  // A later command answered through the Accounts session proves the error would have arrived by now.
  const version = Number(await a.getAttribute("#accounts-mfe", "data-version"));
  await a.click("#accounts-mfe .refresh");
  await waitFor(async () => Number(await a.getAttribute("#accounts-mfe", "data-version")) > version, { what: "a newer version of the accounts view" });
  assert.equal(await a.locator("#accounts-mfe .errors li").count(), 0, "the Accounts session got no error");
  assert.equal(await st.locator(".errors li").count(), 0, "the staff's sessions got no error");
  assert.equal(await a.locator("#transactions-mfe .errors li").count(), 1);
  step(`bank: CommandFailed for ${failing} reached the sending micro-frontend only`);

  // A malformed command (amount is not a number): the bridge applies bridge.yaml's JSON Schema
  // and refuses the publish itself (`invalid`), to this session; nothing reaches Kafka.
  const malformed = await transfer(a, "C-1-CHK", "C-1-SAV", "lots");
  const refused = await a.waitForSelector(`#transactions-mfe .errors li[data-correlation-id="${malformed}"]`);
  assert.match(await refused.textContent(), /^TransferCmd: invalid: .*amount/);
  assert.equal(await a.locator("#accounts-mfe .errors li").count(), 0);
  step(`bank: a malformed TransferCmd is refused by the bridge (${await refused.textContent()}), to the sending session only`);

  // --- staff: acts for an assigned customer, refused for another ---
  await st.fill("#customer", "C-1");
  await st.click("#open-customer");
  await waitFor(async () => JSON.stringify(await balances(st)) === JSON.stringify(await balances(a)), { what: "the staff to see C-1's accounts" });
  await st.waitForSelector("#transactions-mfe .list li");
  await transfer(st, "C-1-SAV", "C-1-CHK", 100);
  await waitFor(async () => (await balances(a))["C-1-SAV"] === start["C-1-SAV"] + 150, { what: "the customer to see the staff's transfer" });
  await waitFor(async () => (await balances(st))["C-1-SAV"] === start["C-1-SAV"] + 150, { what: "the staff to see it too" });
  assert.match(await a.textContent("#transactions-mfe .list li"), /100\.00 C-1-SAV → C-1-CHK \(by S-1\)/);
  step("bank: staff S-1 opened C-1 (claim list), transferred for them; the customer saw it live");
  await screenshot(st, "bank-staff.png");

  await st.fill("#customer", "C-2");
  await st.click("#open-customer");
  await st.waitForSelector("#accounts-mfe .errors li:has-text('assisted-accounts C-2: forbidden')");
  await st.waitForSelector("#transactions-mfe .errors li:has-text('assisted-transactions C-2: forbidden')");
  // Commands too: the bridge checks the record key (/customerId) against the claim and refuses
  // the publish itself; nothing reaches Kafka (the backend keeps no list of its own and would
  // have made the transfer).
  const forbiddenBefore = await metric(bridge2, 'kafka_ws_bridge_publishes_total{channel="assisted-commands",result="forbidden"}');
  const notAssigned = await transfer(st, "C-2-CHK", "C-2-SAV", 1);
  const refusal = await st.waitForSelector(`#transactions-mfe .errors li[data-correlation-id="${notAssigned}"]`);
  assert.equal(
    await refusal.textContent(),
    "TransferCmd: forbidden: publishing on `assisted-commands` with key `C-2` is not allowed: key `C-2` is not listed in your `customers` claim",
  );
  assert.equal(await metric(bridge2, 'kafka_ws_bridge_publishes_total{channel="assisted-commands",result="forbidden"}'), forbiddenBefore + 1);
  assert.notEqual(await st.getAttribute("#transactions-mfe form", "data-acked"), notAssigned, "never acked");
  assert.equal(await st.locator("#accounts-mfe tbody tr").count(), 0);
  step("bank: staff refused C-2 (not in the claim): subscriptions and the command forbidden by the bridge");

  // --- reconnects are transparent: the customer's bridge restarts while the staff, on the
  // other instance, makes a transfer for them; the page resumes without a reload ---
  await st.fill("#customer", "C-1");
  await st.click("#open-customer");
  await st.waitForSelector("#accounts-mfe tbody tr[data-account='C-1-CHK']");
  const listBefore = await a.$$eval("#transactions-mfe .list li", (lis) => lis.map((li) => li.dataset.id));
  await bridge.stop();
  await a.waitForSelector("#accounts-mfe:not([data-state=open])");
  await transfer(st, "C-1-CHK", "C-1-SAV", 5);
  await waitFor(async () => (await balances(st))["C-1-SAV"] === start["C-1-SAV"] + 155, { what: "the staff's transfer while C-1's bridge is down" });
  await bridge.start();
  await a.waitForSelector("#accounts-mfe[data-state=open]", { timeout: 30000 });
  await a.waitForSelector("#transactions-mfe[data-state=open]", { timeout: 30000 });
  await waitFor(async () => (await balances(a))["C-1-SAV"] === start["C-1-SAV"] + 155, { what: "C-1's page to catch up after the reconnect" });
  await a.waitForSelector("#transactions-mfe .list li:has-text('5.00 C-1-CHK → C-1-SAV (by S-1)')");
  const listAfter = await a.$$eval("#transactions-mfe .list li", (lis) => lis.map((li) => li.dataset.id));
  assert.equal(listAfter.length, listBefore.length + 1, "the one transaction made meanwhile, no duplicate");
  assert.deepEqual(listAfter.slice(1), listBefore);
  assert.equal(await a.locator(".replaced:visible").count(), 0);
  step("bank: C-1's bridge restarted while staff (other instance) transferred: the page resumed with it, no reload, no duplicate");

  // --- one session per user and micro-frontend, across the instances: another browser opens
  // only Transactions, on the other instance; this browser's Transactions is closed (4000) and
  // says why, its Accounts stays live ---
  await screenshot(a, "bank-customer.png");
  const b = await newPage(scope, browser, errors);
  await b.goto(url(customer, bridge2, "transactions"));
  await b.waitForSelector("#transactions-mfe[data-state=open]");
  assert.equal(await b.isVisible("#accounts-mfe"), false);
  await a.waitForSelector("#transactions-mfe[data-replaced='4000'][data-state=closed] .replaced:has-text('opened in another browser')");
  assert.equal(await a.getAttribute("#accounts-mfe", "data-state"), "open");
  const live = Number(await a.getAttribute("#accounts-mfe", "data-version"));
  await a.click("#accounts-mfe .refresh");
  await waitFor(async () => Number(await a.getAttribute("#accounts-mfe", "data-version")) > live, { what: "Accounts of the first browser to stay live" });
  assert.equal(await a.locator("#accounts-mfe .replaced:visible").count(), 0);
  assert.equal(await a.getAttribute("#accounts-mfe", "data-replaced"), null);
  await b.waitForSelector("#transactions-mfe .list li:has-text('5.00 C-1-CHK → C-1-SAV (by S-1)')");
  step("bank: C-1's Transactions opened in another browser on the other instance closed this one's (4000); its Accounts stayed live");

  // A full page in a third browser, on the other instance too: it takes Accounts from the first
  // browser (across instances) and Transactions from the second (same instance).
  const c = await newPage(scope, browser, errors);
  await c.goto(url(customer, bridge2));
  await c.waitForSelector("#accounts-mfe tbody tr[data-account='C-1-CHK']");
  await c.waitForSelector("#transactions-mfe[data-state=open]");
  await a.waitForSelector("#accounts-mfe[data-replaced='4000'][data-state=closed] .replaced:has-text('opened in another browser')");
  await b.waitForSelector("#transactions-mfe[data-replaced='4000'][data-state=closed]");
  assert.equal(await c.locator(".replaced:visible").count(), 0);
  assert.deepEqual(await balances(c), await balances(a));
  // The staff's sessions (another user) were not touched.
  assert.equal(await st.getAttribute("#accounts-mfe", "data-state"), "open");
  assert.equal(await st.getAttribute("#transactions-mfe", "data-state"), "open");
  step("bank: a third browser's full page took Accounts from the first browser (other instance) and Transactions from the second");
  await screenshot(a, "bank-replaced.png");
  assert.deepEqual(errors.map(String), [], "no uncaught error in the pages");
}

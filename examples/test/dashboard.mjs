// Transfers dashboard in Chromium: the generator writes transfers; two browsers each pick an
// account and see its balance at once (the snapshot, before any live record), its last 20
// transfers (history) exactly as written, and the table of every account's latest balance.
// Then the generator starts again (balances restored from Kafka) and both update live. The
// records are Avro (Confluent's serializer, a real registry at SCHEMA_REGISTRY_URL): every
// message frame the pages receive carries the schema id the generator registered.

import assert from "node:assert/strict";
import { exampleBridge, newPage, pageServer, screenshot, startBackend, step, unique, waitFor } from "./common.mjs";

/** Every `transfer {...}` line a generator printed. */
const transfersOf = (gen) => gen.lines.filter((l) => l.startsWith("transfer ")).map((l) => JSON.parse(l.slice(9)));

/** The legs of `account` in the order written, newest last, as the page shows them. */
function legs(transfers, account) {
  return transfers
    .filter((t) => t.from === account || t.to === account)
    .map((t) => ({ id: t.id, amount: t.from === account ? -t.amount : t.amount, balance: t.balances[account] }));
}

/** `{ subject: id }` of the `schema {...}` lines a generator printed. */
const schemasOf = (gen) =>
  Object.fromEntries(gen.lines.filter((l) => l.startsWith("schema ")).map((l) => JSON.parse(l.slice(7))).map((s) => [s.subject, s.id]));

/** Collects the `message` frames the page's WebSockets receive, as the bridge sent them. */
function recordFrames(page, frames) {
  page.on("websocket", (ws) =>
    ws.on("framereceived", ({ payload }) => {
      const frame = JSON.parse(typeof payload === "string" ? payload : payload.toString("utf8"));
      if (frame.type === "message") frames.push(frame);
    }),
  );
}

export async function dashboardTest(browser, scope) {
  assert.ok(process.env.SCHEMA_REGISTRY_URL, "SCHEMA_REGISTRY_URL names the registry (examples/test.sh starts one)");
  const prefix = `${unique("ex-dash")}.`;
  const site = await pageServer(scope, "dashboard");
  const bridge = await exampleBridge(scope, "dashboard", { TOPIC_PREFIX: prefix, PAGE_ORIGIN: site.url, INSTANCE_ID: unique("dash") });
  const env = { TOPIC_PREFIX: prefix, ACCOUNTS: "5", SEED: "42" };
  const first = await startBackend(scope, "dashboard", { ...env, RATE: "50", COUNT: "60" }, "generator.mjs");
  await waitFor(() => first.lines.includes("stopped"), { what: "60 transfers" });
  const written = transfersOf(first);
  const final = {};
  for (const t of written) Object.assign(final, t.balances);
  const schemas = schemasOf(first);
  const transfersId = schemas[`${prefix}dashboard.transfers-value`];
  const balancesId = schemas[`${prefix}dashboard.balances-value`];
  assert.ok(Number.isInteger(transfersId) && Number.isInteger(balancesId) && transfersId !== balancesId, `two registered schemas: ${JSON.stringify(schemas)}`);
  step(`dashboard: bridge up, generator registered its Avro schemas (ids ${transfersId}, ${balancesId}), wrote ${written.length} transfers and stopped`);

  const errors = [];
  const url = `${site.url}/?bridge=${encodeURIComponent(bridge.ws)}`;
  const table = (page) => page.$$eval("#accounts tbody tr", (rs) => Object.fromEntries(rs.map((r) => [r.dataset.account, Number(r.dataset.balance)])));
  const shown = (page) => page.$$eval("#transfers tr", (rs) => rs.map((r) => ({ id: r.dataset.id, amount: Number(r.dataset.amount), balance: Number(r.dataset.balance) })).reverse());

  // The bridge consumed everything the generator wrote: its table must match the generator's.
  const pages = {};
  const frames = [];
  for (const account of ["ACC-001", "ACC-002"]) {
    const page = await newPage(scope, browser, errors, { width: 1200, height: 900 });
    recordFrames(page, frames);
    await page.goto(url);
    await waitFor(async () => JSON.stringify(await table(page)) === JSON.stringify(Object.fromEntries(Object.entries(final).sort())), {
      what: `the accounts table to show the final balances ${JSON.stringify(final)}`,
    });
    await page.click(`#accounts tr[data-account=${account}]`);
    await page.waitForSelector("#account[data-source=snapshot]");
    assert.equal(Number(await page.getAttribute("#balance", "data-balance")), final[account], `${account}'s balance at once`);
    const expected = legs(written, account).slice(-20);
    await waitFor(async () => (await shown(page)).length === expected.length, { what: `${expected.length} transfers of ${account}` });
    assert.deepEqual(await shown(page), expected, `${account}: the last 20 transfers, in order`);
    pages[account] = page;
  }
  step("dashboard: two browsers: the table of latest balances, then ACC-001 / ACC-002 each with its balance (snapshot) and last 20 transfers (history)");

  // Live: the generator again (it reads the balances back from Kafka and carries on). Once
  // each page has followed two live transfers of its account, it stops, so that the pages can
  // be compared with everything it wrote.
  const second = await startBackend(scope, "dashboard", { ...env, SEED: "7", RATE: "10" }, "generator.mjs");
  const seen = written.length;
  for (const [account, page] of Object.entries(pages)) {
    await waitFor(async () => (await shown(page)).filter((r) => Number(r.id.slice(2)) > seen).length >= 2, { what: `live transfers on ${account}'s page` });
  }
  await second.stop();
  assert.ok(second.lines.includes("stopped"), "the generator stopped after its current transfer");
  for (const [account, page] of Object.entries(pages)) {
    const live = legs(transfersOf(second), account);
    const newest = live[live.length - 1];
    await waitFor(
      async () => (await shown(page)).at(-1)?.id === newest.id && Number(await page.getAttribute("#balance", "data-balance")) === newest.balance,
      { what: `${account}'s page to show its last transfer ${newest.id}` },
    );
    const rows = await shown(page);
    assert.deepEqual(rows.slice(-live.length), live, `${account}: every live transfer once, in order`);
    assert.deepEqual(rows.slice(0, -live.length), legs(written, account).slice(-20), `${account}: history kept above the live ones`);
    assert.equal(await page.getAttribute("#account", "data-source"), "live");
    // Balances continue from what Kafka held: the first new leg starts from the old balance.
    const before = legs(written, account).at(-1).balance;
    assert.equal(Math.round((before + live[0].amount) * 100) / 100, live[0].balance, "the generator restored the balance from Kafka");
  }
  assert.equal(transfersOf(second)[0].id, `T-${seen + 1}`, "transfer ids continue after a restart");
  step(`dashboard: both pages followed ${transfersOf(second).length} live transfers; balance and list agree with what was written`);

  // Everything the pages showed came through Avro: each message frame names the schema its
  // record was written with (the second generator registered the same schemas again).
  assert.deepEqual(schemasOf(second), schemas, "the restarted generator found its schemas registered");
  const expectedId = { "all-balances": balancesId, balance: balancesId, transfers: transfersId };
  const byChannel = {};
  for (const f of frames) (byChannel[f.channel] ||= []).push(f.schema_id);
  assert.deepEqual(Object.keys(byChannel).sort(), Object.keys(expectedId).sort(), "message frames of every channel");
  for (const [channel, ids] of Object.entries(byChannel)) {
    assert.deepEqual([...new Set(ids)], [expectedId[channel]], `${channel}: every message frame carries schema_id ${expectedId[channel]}`);
  }
  step(`dashboard: all ${frames.length} message frames the pages received carry the registered schema ids (Avro)`);
  await screenshot(pages["ACC-001"], "dashboard.png");
  assert.deepEqual(errors.map(String), [], "no uncaught error in the pages");
}

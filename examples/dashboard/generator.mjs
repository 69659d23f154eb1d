// The dashboard's backend: a generator of random transfers between a few accounts. Each
// transfer is two legs on the transfers topic and two new balances on the balances topic, all
// keyed by account id (plain text keys), the values in Avro: Confluent's serializer
// (@confluentinc/schemaregistry) writes them in Confluent's wire format against the schemas of
// schemas/, which it registers at start (subjects <topic>-value). At start it also reads the
// balances topic back (Confluent's deserializer), so balances continue across restarts. Kafka
// and the Schema Registry only.
//
//   KAFKA_BOOTSTRAP, TOPIC_PREFIX   broker and topic prefix (as the bridge.yaml)
//   SCHEMA_REGISTRY_URL             a Confluent-compatible registry (as the bridge.yaml)
//   ACCOUNTS=6  RATE=2 (transfers per second)  SEED (for repeatable runs)  COUNT (stop after)
// Prints `schema {"subject":…,"id":…}` per registered schema, `ready` when it starts
// generating, then one `transfer {json}` line per transfer.

import { readFileSync } from "node:fs";
import { AvroDeserializer, AvroSerializer, SchemaRegistryClient, SerdeType, SubjectNameStrategyType } from "@confluentinc/schemaregistry";
import { kafka, topic } from "../lib/kafka.mjs";

if (!process.env.SCHEMA_REGISTRY_URL) {
  console.error("SCHEMA_REGISTRY_URL is not set: the generator writes Avro through a Schema Registry (examples/run.sh dashboard starts one)");
  process.exit(2);
}
const registry = new SchemaRegistryClient({ baseURLs: [process.env.SCHEMA_REGISTRY_URL] });
// Subjects by TopicNameStrategy (<topic>-value), as the bridge and Confluent's other clients use.
const serde = { subjectNameStrategyType: SubjectNameStrategyType.TOPIC };
// The schemas are registered here, as a producer's deployment would; the serializer then uses
// each subject's latest version (auto-registration would derive a schema from each value).
const serializer = new AvroSerializer(registry, SerdeType.VALUE, { ...serde, autoRegisterSchemas: false, useLatestVersion: true });
const deserializer = new AvroDeserializer(registry, SerdeType.VALUE, serde);
for (const [name, file] of [["dashboard.transfers", "transfer-leg.avsc"], ["dashboard.balances", "balance.avsc"]]) {
  const subject = `${topic(name)}-value`;
  const schema = readFileSync(new URL(`schemas/${file}`, import.meta.url), "utf8");
  const id = await registry.register(subject, { schemaType: "AVRO", schema });
  console.log(`schema ${JSON.stringify({ subject, id })}`);
}

const client = kafka("dashboard-generator");
const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
const accounts = Array.from({ length: Number(process.env.ACCOUNTS || 6) }, (_, i) => `ACC-${String(i + 1).padStart(3, "0")}`);
const rate = Number(process.env.RATE || 2);

// A small seeded generator (mulberry32), so that a given SEED gives the same transfers.
let seed = Number(process.env.SEED || Date.now()) >>> 0;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** The balances already on the topic (the newest per account), read up to the end. */
async function restoreBalances() {
  const admin = client.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic("dashboard.balances"));
  await admin.disconnect();
  const balances = new Map(accounts.map((a) => [a, 1000]));
  const pending = new Set(ends.filter((p) => Number(p.high) > 0).map((p) => p.partition));
  if (pending.size === 0) return { balances, sequence: 0 };
  let sequence = 0;
  const reader = client.consumer({ groupId: `dashboard-restore-${process.pid}-${Date.now()}` });
  await reader.connect();
  await reader.subscribe({ topic: topic("dashboard.balances"), fromBeginning: true });
  await new Promise((resolve, reject) => {
    reader.run({
      eachMessage: async ({ partition, message }) => {
        let value;
        try {
          value = await deserializer.deserialize(topic("dashboard.balances"), message.value);
        } catch (e) {
          // E.g. JSON records of this example before it moved to Avro: start on new topics.
          const hint = "(rm -rf .local/examples-kafka, or another TOPIC_PREFIX, for topics of Avro records only)";
          reject(new Error(`${topic("dashboard.balances")} offset ${message.offset}: not a record of balance.avsc ${hint}: ${e.message}`));
          return;
        }
        balances.set(message.key.toString(), value.balance);
        sequence = Math.max(sequence, value.sequence || 0);
        const high = Number(ends.find((p) => p.partition === partition).high);
        if (Number(message.offset) + 1 >= high) pending.delete(partition);
        if (pending.size === 0) resolve();
      },
    });
  });
  await reader.disconnect();
  return { balances, sequence };
}

await producer.connect();
const { balances, sequence: restored } = await restoreBalances();
let sequence = restored;
// SIGTERM/SIGINT: finish the transfer being written (and its line), then stop.
let stopping = false;
let wake = () => {};
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    stopping = true;
    wake();
  });
}
console.log("ready");

async function one() {
  const from = accounts[Math.floor(random() * accounts.length)];
  let to = from;
  while (to === from) to = accounts[Math.floor(random() * accounts.length)];
  const amount = Math.round((5 + random() * 195) * 100) / 100;
  const id = `T-${++sequence}`;
  const at = new Date().toISOString();
  balances.set(from, Math.round((balances.get(from) - amount) * 100) / 100);
  balances.set(to, Math.round((balances.get(to) + amount) * 100) / 100);
  const avro = (name) => async (value) => ({ key: value.account, value: await serializer.serialize(topic(name), value) });
  const leg = (account, counterparty, signed) => ({ id, account, counterparty, amount: signed, balance: balances.get(account), at });
  const balance = (account) => ({ account, balance: balances.get(account), transfer: id, sequence, at });
  await producer.sendBatch({
    topicMessages: [
      { topic: topic("dashboard.transfers"), messages: await Promise.all([leg(from, to, -amount), leg(to, from, amount)].map(avro("dashboard.transfers"))) },
      { topic: topic("dashboard.balances"), messages: await Promise.all([balance(from), balance(to)].map(avro("dashboard.balances"))) },
    ],
  });
  console.log(`transfer ${JSON.stringify({ id, from, to, amount, balances: { [from]: balances.get(from), [to]: balances.get(to) } })}`);
}

// Paced from the start time, so a slow send does not lower the rate.
const started = Date.now();
const count = Number(process.env.COUNT || Infinity);
for (let n = 0; n < count && !stopping; n++) {
  await one();
  const wait = started + ((n + 1) * 1000) / rate - Date.now();
  if (wait > 0 && !stopping) await new Promise((r) => (wake = r, setTimeout(r, wait)));
}
await producer.disconnect();
console.log("stopped");

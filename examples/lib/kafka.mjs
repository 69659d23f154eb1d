// kafkajs plumbing shared by the example backends: the client from KAFKA_BOOTSTRAP, topic
// names with the optional TOPIC_PREFIX (the tests use random prefixes), header helpers, and
// a clean stop on SIGTERM/SIGINT. Backends talk to Kafka only, never to the bridge.

import { Kafka, logLevel } from "kafkajs";

export const prefix = process.env.TOPIC_PREFIX || "";
export const topic = (name) => `${prefix}${name}`;

export function kafka(clientId) {
  const brokers = (process.env.KAFKA_BOOTSTRAP || "127.0.0.1:9092").split(",");
  return new Kafka({ clientId, brokers, logLevel: logLevel.WARN, retry: { retries: 8, initialRetryTime: 100 } });
}

/** Record headers as strings (kafkajs hands Buffers). */
export function headers(message) {
  const out = {};
  for (const [name, value] of Object.entries(message.headers || {})) {
    out[name] = value === null || value === undefined ? null : value.toString();
  }
  return out;
}

/** The three headers the bridge sets on an inbound record, to copy into a reply. */
export function replyHeaders(h) {
  const out = {};
  for (const name of ["bridge-session", "bridge-user", "correlation-id"]) if (h[name] != null) out[name] = h[name];
  return out;
}

/** Consumer that has joined its group and got its partitions: resolves once it can receive. */
export async function startConsumer(client, { groupId, topics, fromBeginning = true, eachMessage }) {
  const consumer = client.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 50 });
  const joined = new Promise((resolve) => consumer.on(consumer.events.GROUP_JOIN, resolve));
  await consumer.connect();
  for (const t of topics) await consumer.subscribe({ topic: t, fromBeginning });
  await consumer.run({ eachMessage });
  await joined;
  return consumer;
}

/** Stops `resources` (consumers, producers: anything with disconnect()) on SIGTERM/SIGINT. */
export function stopOnSignal(resources) {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.allSettled(resources.map((r) => r.disconnect()));
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

// A backend of the notifications relay that speaks Kafka: reads what browsers send on
// `actions` (Spring's /app/actions) and answers the user with a notification keyed by their
// id — whichever relay instance (and however many tabs) they are connected to.
//
//   KAFKA_BOOTSTRAP, TOPIC_PREFIX   broker and topic prefix (as the bridge.yaml)
// Prints `ready`, then `action {json}` for every action it handles.

import { kafka, topic, headers, startConsumer, stopOnSignal } from "../lib/kafka.mjs";

const client = kafka("notifications-worker");
const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();

const consumer = await startConsumer(client, {
  groupId: `${topic("notify")}-worker`,
  topics: [topic("notify.actions")],
  async eachMessage({ partition, message }) {
    const h = headers(message);
    const user = h["bridge-user"]; // set by the bridge from the token, never by the page
    const action = JSON.parse(message.value.toString());
    console.log(`action ${JSON.stringify({ user, correlationId: h["correlation-id"], session: h["bridge-session"], action, partition, offset: Number(message.offset) })}`);
    const notification = {
      kind: "action-done",
      text: `The worker handled your “${action.name}”`,
      correlationId: h["correlation-id"],
      at: new Date().toISOString(),
    };
    await producer.send({ topic: topic("notify.user"), messages: [{ key: user, value: JSON.stringify(notification) }] });
  },
});
stopOnSignal([consumer, producer]);
console.log("ready");

// The chat's backend (what the Spring @KafkaListener did): reads what users send, checks the
// recipient exists, stamps the sender from the bridge's user header (a page cannot claim to be
// someone else) and writes the message keyed by recipient; answers the sending tab with a
// receipt or a refusal. Kafka only.
//
//   KAFKA_BOOTSTRAP, TOPIC_PREFIX   broker and topic prefix (as the bridge.yaml)
//   CHAT_USERS=alice,bob,carol      the user directory
// Prints `ready`.

import { kafka, topic, headers, replyHeaders, startConsumer, stopOnSignal } from "../lib/kafka.mjs";

const users = new Set((process.env.CHAT_USERS || "alice,bob,carol").split(",").filter(Boolean));
const client = kafka("chat-backend");
const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();

const consumer = await startConsumer(client, {
  groupId: `${topic("chat")}-backend`,
  topics: [topic("chat.outgoing")],
  async eachMessage({ message }) {
    const h = headers(message);
    const from = h["bridge-user"];
    let sent;
    try {
      sent = JSON.parse(message.value.toString());
    } catch {
      sent = {};
    }
    const receipt = (body) => ({ topic: topic("chat.receipts"), messages: [{ key: from, value: JSON.stringify({ clientId: sent.clientId ?? null, ...body }), headers: replyHeaders(h) }] });
    const text = typeof sent.text === "string" ? sent.text.trim() : "";
    if (!users.has(sent.to) || !text) {
      await producer.send(receipt({ status: "refused", reason: !text ? "empty message" : `no user ${JSON.stringify(sent.to)}` }));
      return;
    }
    const id = `${h["bridge-session"]}/${h["correlation-id"]}`;
    const chat = { id, from, to: sent.to, text, clientId: sent.clientId ?? null, at: new Date(Number(message.timestamp)).toISOString() };
    await producer.send({ topic: topic("chat.messages"), messages: [{ key: sent.to, value: JSON.stringify(chat) }] });
    await producer.send(receipt({ status: "delivered", id }));
  },
});
stopOnSignal([consumer, producer]);
console.log("ready");

// A backend that cannot speak Kafka: pushes through the relay's HTTP endpoint
// (POST /api/v1/publish with an API key), to any one instance. The record goes to Kafka, and
// every instance delivers it to the sessions it holds.
//
//   node examples/notifications/push.mjs URL API_KEY user USER TEXT
//   node examples/notifications/push.mjs URL API_KEY all TEXT
// URL is an instance's http://host:port. Prints where Kafka wrote the record.

import { fileURLToPath } from "node:url";

/** POSTs one notification: to `user`'s queue, or (user null) an announcement to everyone. */
export async function push(base, apiKey, user, text) {
  const body = user
    ? { channel: "notifications", key: user, data: { kind: "push", text, at: new Date().toISOString() } }
    : { channel: "announcements", data: { kind: "announcement", text, at: new Date().toISOString() } };
  const response = await fetch(`${base}/api/v1/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.status !== 202) throw new Error(`POST ${base}/api/v1/publish: ${response.status} ${JSON.stringify(answer)}`);
  return answer; // { topic, partition, offset }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [base, apiKey, target, ...rest] = process.argv.slice(2);
  if (!base || !apiKey || !["user", "all"].includes(target)) {
    console.error("usage: push.mjs URL API_KEY user USER TEXT | push.mjs URL API_KEY all TEXT");
    process.exit(2);
  }
  const user = target === "user" ? rest.shift() : null;
  console.log(JSON.stringify(await push(base, apiKey, user, rest.join(" ") || "hello")));
}

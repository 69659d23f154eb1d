// Notifications page: the user's own notifications and the announcements, pushed by backends
// through Kafka or the HTTP endpoint of any relay instance; actions sent to a topic backends
// read, acknowledged once Kafka has them. Plain ES module, the project's JS client.

import { connect } from "/client/kafka-ws-bridge.js";

const params = new URLSearchParams(location.search);
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const bridgeUrl = params.get("bridge") || `ws://${location.hostname}:8080/ws`;

function item(list, text, data = {}) {
  const li = document.createElement("li");
  li.textContent = text;
  Object.assign(li.dataset, data);
  document.getElementById(list).prepend(li);
  return li;
}

if (!token) {
  document.getElementById("signin").hidden = false;
} else {
  document.getElementById("instance").textContent = `via ${new URL(bridgeUrl).host}`;
  const client = connect(bridgeUrl, { token });
  client.on("state", (s) => {
    document.body.dataset.state = s;
    document.getElementById("state").textContent = s;
  });
  client.on("open", ({ user }) => (document.getElementById("who").textContent = user));

  // history: 20 — what arrived while this tab was closed, then live.
  client.subscribe("notifications", {
    history: 20,
    onMessage: (n, frame) => item("notifications", n.text, { kind: n.kind, correlationId: n.correlationId || "", offset: `${frame.partition}:${frame.offset}` }),
  });
  client.subscribe("announcements", { onMessage: (a) => item("announcements", a.text, { kind: a.kind }) });

  document.getElementById("action").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = new FormData(event.target).get("name");
    const id = `action-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    const li = item("sent", `${name}: sending…`, { id });
    try {
      const ack = await client.publish("actions", { name }, { id });
      li.textContent = `${name}: in Kafka (partition ${ack.partition}, offset ${ack.offset})`;
      li.dataset.acked = `${ack.partition}:${ack.offset}`;
    } catch (e) {
      li.textContent = `${name}: ${e.code}: ${e.message}`;
      li.className = "error";
    }
  });
}

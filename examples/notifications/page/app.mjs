// Notifications page, written as for a Spring WebSocket + STOMP relay: @stomp/stompjs with
// Spring's destinations — /user/queue/notifications (the user's own), /topic/announcements
// (everyone), SEND /app/actions with a receipt. The bridge speaks STOMP 1.2 on its ws path, so
// this is the code a Spring frontend already has; the only additions are the bridge's optional
// `history`/`resume` SUBSCRIBE headers, so that a reload or a reconnect misses nothing.
// Plain ES module; "@stomp/stompjs" resolves through the import map in index.html.

import { Client } from "@stomp/stompjs";

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

function setState(state) {
  document.body.dataset.state = state;
  document.getElementById("state").textContent = state;
}

if (!token) {
  document.getElementById("signin").hidden = false;
} else {
  document.getElementById("instance").textContent = `via ${new URL(bridgeUrl).host}`;
  const client = new Client({
    brokerURL: bridgeUrl,
    connectHeaders: { passcode: token }, // or { Authorization: `Bearer ${token}` }, as with Spring
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
    reconnectDelay: 2000,
  });

  // Where this tab is in each partition of its queue, so that a reconnect asks the bridge for
  // what came after (`resume`) instead of the last 20 again; message-ids guard against repeats.
  const positions = new Map();
  const seen = new Set();
  const sending = new Map(); // receipt → the list item of an action awaiting Kafka's ack

  client.onConnect = (connected) => {
    setState("open");
    document.body.dataset.stomp = connected.headers.version;
    document.getElementById("who").textContent = connected.headers["user-name"] || "";

    const resume = [...positions].map(([p, o]) => `${p}:${o}`).join(",");
    client.subscribe(
      "/user/queue/notifications",
      (message) => {
        const h = message.headers;
        positions.set(h["kafka-partition"], h["kafka-offset"]);
        if (seen.has(h["message-id"])) return;
        seen.add(h["message-id"]);
        const n = JSON.parse(message.body);
        item("notifications", n.text, { kind: n.kind, correlationId: n.correlationId || "", offset: `${h["kafka-partition"]}:${h["kafka-offset"]}` });
      },
      resume ? { resume } : { history: "20" }, // bridge extras: what arrived while this tab was away
    );
    client.subscribe("/topic/announcements", (message) => {
      const a = JSON.parse(message.body);
      item("announcements", a.text, { kind: a.kind });
    });
  };
  client.onWebSocketClose = () => {
    if (client.active) setState("reconnecting");
  };
  client.onStompError = (frame) => {
    // The bridge closes the connection after an ERROR; stompjs reconnects.
    const li = sending.get(frame.headers["receipt-id"]);
    if (li) {
      li.textContent += ` — ${frame.headers.code}: ${frame.headers.message}`;
      li.className = "error";
    } else {
      item("sent", `${frame.headers.code}: ${frame.headers.message}`, {}).className = "error";
    }
  };

  document.getElementById("action").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = new FormData(event.target).get("name");
    if (!client.connected) {
      item("sent", `${name}: not connected`).className = "error";
      return;
    }
    // The receipt is the Kafka record's correlation-id: the worker's answer carries it back.
    const receipt = `action-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    const li = item("sent", `${name}: sending…`, { receipt });
    sending.set(receipt, li);
    client.watchForReceipt(receipt, () => {
      sending.delete(receipt);
      li.textContent = `${name}: in Kafka (receipt ${receipt})`;
      li.dataset.acked = "true";
    });
    client.publish({ destination: "/app/actions", body: JSON.stringify({ name }), headers: { receipt } });
  });

  client.activate();
}

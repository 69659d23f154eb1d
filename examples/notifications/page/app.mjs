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

  // A subscription that picks up where it stopped: the bridge's `resume` header (its extra to
  // STOMP) with the last offset this tab showed per partition, so a reconnect brings what was
  // missed and nothing twice (offsets arrive in order within a partition of one key).
  function resumable(destination, onMessage, firstHeaders = {}) {
    const positions = new Map();
    return () => {
      const resume = [...positions].map(([p, o]) => `${p}:${o}`).join(",");
      client.subscribe(
        destination,
        (message) => {
          const [partition, offset] = [Number(message.headers["kafka-partition"]), Number(message.headers["kafka-offset"])];
          if (offset <= (positions.get(partition) ?? -1)) return; // already shown
          positions.set(partition, offset);
          onMessage(JSON.parse(message.body), `${partition}:${offset}`);
        },
        resume ? { resume } : firstHeaders,
      );
    };
  }
  const subscriptions = [
    // history: 20 — the first time, what arrived while this tab was closed.
    resumable("/user/queue/notifications", (n, offset) => item("notifications", n.text, { kind: n.kind, correlationId: n.correlationId || "", offset }), { history: "20" }),
    resumable("/topic/announcements", (a) => item("announcements", a.text, { kind: a.kind })),
  ];
  const sending = new Map(); // receipt → the list item of an action awaiting Kafka's ack

  client.onConnect = (connected) => {
    setState("open");
    document.body.dataset.stomp = connected.headers.version;
    document.getElementById("who").textContent = connected.headers["user-name"] || "";
    for (const subscribe of subscriptions) subscribe(); // stompjs does not resubscribe by itself
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

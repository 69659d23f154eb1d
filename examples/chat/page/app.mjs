// Chat page: messages to me (every open tab gets each one), messages I sent (my other tabs
// see them), receipts for this tab. The browser keeps the messages it has seen and, per
// subscription, the last Kafka position it saw (localStorage): the next login resumes right
// after it — what arrived while the user was away, in order, none twice. Plain ES module.

import { connect } from "/client/kafka-ws-bridge.js";

const params = new URLSearchParams(location.search);
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const bridgeUrl = params.get("bridge") || `ws://${location.hostname}:8080/ws`;

if (!token) {
  document.getElementById("signin").hidden = false;
} else {
  const me = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub; // display only
  document.getElementById("who").textContent = me;

  // This browser's store for `me`, shared by its tabs: messages by id, positions per channel.
  const storeKey = `kafka-ws-bridge-chat:${me}`;
  const load = () => JSON.parse(localStorage.getItem(storeKey) || '{"messages":[],"positions":{}}');
  function save(channel, positions, message) {
    const store = load();
    if (message && !store.messages.some((m) => m.id === message.id)) store.messages.push(message);
    const saved = (store.positions[channel] ||= {});
    for (const [p, o] of Object.entries(positions)) if (!(saved[p] >= o)) saved[p] = o;
    localStorage.setItem(storeKey, JSON.stringify(store));
  }

  const timeline = document.getElementById("timeline");
  function show(m, how) {
    const li = document.createElement("li");
    li.className = `${m.from === me ? "out" : "in"} ${how}`;
    li.dataset.id = m.id;
    li.dataset.from = m.from;
    li.dataset.to = m.to;
    li.dataset.how = how;
    li.textContent = m.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = m.from === me ? `to ${m.to}` : `from ${m.from}`;
    li.prepend(meta);
    timeline.append(li);
  }

  const stored = load();
  for (const m of stored.messages) show(m, "stored");

  const client = connect(bridgeUrl, { token });
  client.on("state", (s) => {
    document.body.dataset.state = s;
    document.getElementById("state").textContent = s;
  });

  for (const channel of ["inbox", "sent"]) {
    const saved = stored.positions[channel];
    const sub = client.subscribe(channel, {
      // First login in this browser: the last 200; afterwards: everything since the last visit.
      history: 200,
      resume: saved,
      onMessage: (m) => {
        save(channel, sub.positions, m);
        show(m, "live");
      },
      onSubscribed: (frame) => {
        save(channel, sub.positions);
        if (channel === "inbox" && frame.replayed > 0 && saved && Object.keys(saved).length) {
          const away = document.getElementById("away");
          away.dataset.replayed = frame.replayed;
          away.textContent = `${frame.replayed} new while you were away`;
        }
      },
    });
  }

  const receipts = document.getElementById("receipts");
  client.subscribe("receipts", {
    onMessage: (r) => {
      const li = document.createElement("li");
      li.className = r.status;
      li.dataset.clientId = r.clientId;
      li.dataset.status = r.status;
      li.textContent = r.status === "delivered" ? `✓ delivered (${r.clientId})` : `✗ ${r.reason} (${r.clientId})`;
      receipts.prepend(li);
    },
  });

  const form = document.getElementById("compose");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = new FormData(form);
    const clientId = `m-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    form.dataset.lastClientId = clientId;
    try {
      await client.publish("send", { to: String(f.get("to")).trim(), text: f.get("text"), clientId });
      form.elements.text.value = "";
    } catch (e) {
      const li = document.createElement("li");
      li.className = "refused";
      li.textContent = `✗ ${e.code}: ${e.message}`;
      receipts.prepend(li);
    }
  });
}

// Transactions micro-frontend: the customer's last transactions (history on subscribe, then
// live), and the transfer form whose TransferCmd failures come back to this session only.

import { isStaff, claims, openConnection, showError } from "./session.mjs";

export function mountTransactions(section) {
  const client = openConnection(section, "transactions");
  const list = section.querySelector(".list");
  const form = section.querySelector("form");
  let current = null;

  client.subscribe("errors", {
    onMessage: (e, frame) => showError(section, `${e.command}: ${e.message}`, frame.headers["correlation-id"]),
  });

  function add(t, frame) {
    const li = document.createElement("li");
    li.dataset.id = t.id;
    li.dataset.offset = `${frame.partition}:${frame.offset}`;
    li.textContent = `${t.amount.toFixed(2)} ${t.from} → ${t.to} (by ${t.by})`;
    list.prepend(li);
  }

  function open(customer) {
    current?.subscription.unsubscribe();
    list.replaceChildren();
    const channel = isStaff ? "assisted-transactions" : "transactions";
    const subscription = client.subscribe(channel, {
      key: customer,
      history: 20,
      onMessage: add,
      onError: (e) => showError(section, `${channel} ${customer}: ${e.code}`),
    });
    current = { customer, subscription };
    section.dataset.customer = customer;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!current) return;
    const f = new FormData(form);
    const amount = Number(f.get("amount"));
    const data = { type: "TransferCmd", from: f.get("from"), to: f.get("to"), amount: Number.isNaN(amount) ? f.get("amount") : amount };
    if (isStaff) data.customerId = current.customer;
    const id = `transfer-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    form.dataset.lastCommand = id;
    try {
      const ack = await client.publish(isStaff ? "assisted-commands" : "commands", data, { id });
      form.dataset.acked = ack.id;
    } catch (e) {
      // Refused by the bridge before Kafka (e.g. `invalid`: the command's JSON Schema).
      showError(section, `TransferCmd: ${e.code}: ${e.message}`, id);
    }
  });
  return { open, client, initial: isStaff ? null : claims.sub };
}

// Accounts micro-frontend: sends RetrieveAccountsCmd, shows the customer's AccountListUpdated
// (its current value comes with the subscription, as a snapshot), and its own command errors.

import { claims, isStaff, openConnection, showError } from "./session.mjs";

export function mountAccounts(section) {
  const client = openConnection(section, "accounts");
  const body = section.querySelector("tbody");
  const meta = section.querySelector(".meta");
  let current = null; // { customer, subscription }

  // Failures of the commands this session sent, and only those (deliver: reply).
  client.subscribe("errors", {
    onMessage: (e, frame) => showError(section, `${e.command}: ${e.message}`, frame.headers["correlation-id"]),
  });

  function render(event) {
    body.replaceChildren(
      ...event.accounts.map((a) => {
        const tr = document.createElement("tr");
        tr.dataset.account = a.id;
        for (const [text, cls] of [[a.id], [a.name], [a.balance.toFixed(2), "balance"]]) {
          const td = document.createElement("td");
          td.textContent = text;
          if (cls) td.className = cls;
          tr.append(td);
        }
        return tr;
      }),
    );
    section.dataset.version = event.version;
    meta.textContent = `${event.customerId} · version ${event.version} · after ${event.cause}`;
  }

  async function retrieve(customer) {
    const data = { type: "RetrieveAccountsCmd" };
    if (isStaff) data.customerId = customer;
    try {
      await client.publish(isStaff ? "assisted-commands" : "commands", data);
    } catch (e) {
      showError(section, `RetrieveAccountsCmd: ${e.code}: ${e.message}`);
    }
  }

  /** Shows `customer`'s accounts: the customer's own, or (staff) one of theirs. */
  function open(customer) {
    current?.subscription.unsubscribe();
    body.replaceChildren();
    meta.textContent = "";
    delete section.dataset.version;
    const channel = isStaff ? "assisted-accounts" : "accounts";
    const subscription = client.subscribe(channel, {
      key: customer,
      onSnapshot: render,
      onMessage: render,
      onError: (e) => showError(section, `${channel} ${customer}: ${e.code}`),
    });
    current = { customer, subscription };
    section.dataset.customer = customer;
    subscription.ready.then(() => retrieve(customer), () => {});
  }

  section.querySelector(".refresh").addEventListener("click", () => current && retrieve(current.customer));
  return { open, client, initial: isStaff ? null : claims.sub };
}

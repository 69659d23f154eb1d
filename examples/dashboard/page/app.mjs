// Transfers dashboard: every account's latest balance (a broadcast snapshot channel), and for
// the account picked, its balance at once (snapshot with `subscribed`) and its past transfers
// (history), both then live. Plain ES module, the project's JS client, no build step.

import { connect } from "/client/kafka-ws-bridge.js";

const params = new URLSearchParams(location.search);
const client = connect(params.get("bridge") || `ws://${location.hostname}:8080/ws`);
client.on("state", (s) => {
  document.body.dataset.state = s;
  document.getElementById("state").textContent = s;
});

const money = (n) => n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const rows = new Map(); // account -> <tr> of the accounts table

client.subscribe("all-balances", {
  onMessage(b) {
    let tr = rows.get(b.account);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.account = b.account;
      tr.innerHTML = "<td></td><td class=balance></td><td class=last></td>";
      tr.firstChild.textContent = b.account;
      tr.addEventListener("click", () => pick(b.account));
      rows.set(b.account, tr);
      const body = document.querySelector("#accounts tbody");
      body.append(...[...rows.values()].sort((x, y) => x.dataset.account.localeCompare(y.dataset.account)));
    }
    tr.dataset.balance = b.balance;
    tr.querySelector(".balance").textContent = money(b.balance);
    tr.querySelector(".last").textContent = b.transfer;
  },
});

let picked = null; // { account, subscriptions }

function showBalance(b, source) {
  const el = document.getElementById("balance");
  el.textContent = money(b.balance);
  el.dataset.balance = b.balance;
  el.dataset.transfer = b.transfer;
  document.getElementById("source").textContent = `(${source})`;
  document.getElementById("account").dataset.source = source;
}

function addTransfer(t) {
  const tr = document.createElement("tr");
  tr.dataset.id = t.id;
  tr.dataset.amount = t.amount;
  tr.dataset.balance = t.balance;
  tr.className = "flash";
  for (const [text, cls] of [[t.id], [t.counterparty], [money(t.amount), t.amount < 0 ? "neg" : "pos"], [money(t.balance)]]) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
  }
  document.getElementById("transfers").prepend(tr);
}

function pick(account) {
  if (picked) for (const s of picked.subscriptions) s.unsubscribe();
  for (const [a, tr] of rows) tr.classList.toggle("selected", a === account);
  document.getElementById("account").hidden = false;
  document.getElementById("account").dataset.account = account;
  document.getElementById("account-id").textContent = account;
  document.getElementById("balance").textContent = "…";
  document.getElementById("transfers").replaceChildren();
  picked = {
    account,
    subscriptions: [
      client.subscribe("balance", { key: account, onSnapshot: (b) => showBalance(b, "snapshot"), onMessage: (b) => showBalance(b, "live") }),
      client.subscribe("transfers", { key: account, history: 20, onMessage: addTransfer }),
    ],
  };
}

// The bank's backend: reads commands from Kafka, keeps the accounts view, writes events keyed
// by customer id (never by connection), and sends failures to the error topic with the
// command's bridge-session / correlation-id headers so that they reach the one session that
// sent the command. Kafka only: it knows nothing of the bridge or of WebSockets.
//
// Who may act for which customer is the bridge's to check (the staff token's `customers` claim,
// bridge.yaml's `keys`): a command's record key is the customer, computed and checked by the
// bridge, and `bridge-roles` says the sender's roles. The backend keeps no table of its own.
//
//   KAFKA_BOOTSTRAP, TOPIC_PREFIX   broker and topic prefix (as the bridge.yaml)
// Prints `ready` once it reads the command topic.

import { kafka, topic, headers, replyHeaders, startConsumer, stopOnSignal } from "../lib/kafka.mjs";

const client = kafka("bank-backend");
const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });

// The accounts view (what the ksqlDB table held): customer -> accounts. A customer seen for
// the first time gets two accounts with balances derived from the id, so runs are repeatable.
const view = new Map();
function accountsOf(customer) {
  let accounts = view.get(customer);
  if (!accounts) {
    const seed = [...customer].reduce((n, c) => n + c.charCodeAt(0), 0);
    accounts = [
      { id: `${customer}-CHK`, name: "Checking", balance: 1000 + (seed % 7) * 100 },
      { id: `${customer}-SAV`, name: "Savings", balance: 5000 + (seed % 5) * 1000 },
    ];
    view.set(customer, accounts);
  }
  return accounts;
}
const versions = new Map();

class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** Whose accounts a command is about: its record key, which the bridge computed and checked —
 * the sender's own id on `commands`, one of the staff member's `customers` on
 * `assisted-commands`. Someone else's key without the staff role (not a bridge's record) is
 * refused. */
function customerOf(message, h) {
  const user = h["bridge-user"];
  const customer = message.key?.toString();
  if (!customer) throw new CommandError("validation", "a command without a customer key");
  const roles = (h["bridge-roles"] || "").split(",").filter(Boolean);
  if (customer !== user && !roles.includes("staff")) {
    throw new CommandError("not_allowed", `${user} may not act for customer ${customer}`);
  }
  return customer;
}

function accountListUpdated(customer, cause) {
  const version = (versions.get(customer) || 0) + 1;
  versions.set(customer, version);
  return {
    topic: topic("bank.accounts"),
    messages: [{ key: customer, value: JSON.stringify({ type: "AccountListUpdated", customerId: customer, version, cause, accounts: accountsOf(customer) }) }],
  };
}

function transfer(customer, command, h) {
  const accounts = accountsOf(customer);
  const from = accounts.find((a) => a.id === command.from);
  const to = accounts.find((a) => a.id === command.to);
  if (!from || !to) throw new CommandError("unknown_account", `no account ${!from ? command.from : command.to} for ${customer}`);
  if (from === to) throw new CommandError("validation", "from and to are the same account");
  if (!Number.isFinite(command.amount) || command.amount <= 0) throw new CommandError("validation", "amount must be a positive number");
  if (from.balance < command.amount) throw new CommandError("insufficient_funds", `${from.id} holds ${from.balance}, less than ${command.amount}`);
  from.balance -= command.amount;
  to.balance += command.amount;
  const recorded = {
    type: "TransactionRecorded",
    customerId: customer,
    id: `${h["bridge-session"]}/${h["correlation-id"]}`,
    from: from.id,
    to: to.id,
    amount: command.amount,
    by: h["bridge-user"],
    at: new Date().toISOString(),
  };
  return [{ topic: topic("bank.transactions"), messages: [{ key: customer, value: JSON.stringify(recorded) }] }, accountListUpdated(customer, "TransferCmd")];
}

async function handle({ message }) {
  const h = headers(message);
  let command;
  try {
    command = JSON.parse(message.value.toString());
    const customer = customerOf(message, h);
    let out;
    if (command.type === "RetrieveAccountsCmd") out = [accountListUpdated(customer, "RetrieveAccountsCmd")];
    else if (command.type === "TransferCmd") out = transfer(customer, command, h);
    else throw new CommandError("validation", `unknown command type ${JSON.stringify(command.type)}`);
    await producer.sendBatch({ topicMessages: out });
  } catch (e) {
    if (!(e instanceof CommandError) && !(e instanceof SyntaxError)) throw e; // Kafka trouble: retried by kafkajs
    const failure = { type: "CommandFailed", command: command?.type ?? null, code: e.code || "validation", message: e.message, correlationId: h["correlation-id"] };
    await producer.send({ topic: topic("bank.errors"), messages: [{ key: h["bridge-user"] || null, value: JSON.stringify(failure), headers: replyHeaders(h) }] });
  }
}

await producer.connect();
const consumer = await startConsumer(client, {
  groupId: `${topic("bank")}-backend`,
  topics: [topic("bank.commands")],
  eachMessage: handle,
});
stopOnSignal([consumer, producer]);
console.log("ready");

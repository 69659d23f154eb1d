// Compiled (not run) by `npm run typecheck`: the declarations describe the API as used.
import { connect, BridgeError, type Ack, type MessageFrame, type Subscription } from "../kafka-ws-bridge.js";

declare const WS: import("../kafka-ws-bridge.js").WebSocketConstructor;

interface Balance {
  customer: string;
  balance: number;
}

async function example(): Promise<void> {
  const client = connect("wss://bridge.example/ws", {
    getToken: async () => "jwt",
    WebSocket: WS,
    reconnect: { minDelayMs: 250, maxDelayMs: 10000 },
    publishTimeoutMs: 5000,
  });
  const offOpen = client.on("open", ({ session, user, reconnected }) => {
    const s: string = session;
    const u: string | null = user;
    const r: boolean = reconnected;
    void [s, u, r];
  });
  offOpen();
  client.on("close", (e) => void (e.code + (e.willReconnect ? 1 : 0)));
  client.on("gap", (g) => void g.subscription.unsubscribe());
  client.on("error", (e: BridgeError) => void e.code);
  client.on("state", (s) => void (s === "reconnecting"));

  const sub: Subscription = client.subscribe<Balance>("balances", {
    key: "C-1",
    history: 20,
    onSnapshot: (b, info) => void (b.balance + info.offset),
    onMessage: (b: Balance, frame: MessageFrame<Balance>) => void (b.customer + frame.partition),
  });
  const frame = await sub.ready;
  void (frame.replayed + Number(sub.positions["0"]));
  client.subscribe("transfers", { onMessage: (d) => void d });
  const balance: Balance = { customer: "C-1", balance: 1 };
  await client.publish("commands", balance);

  try {
    const ack: Ack = await client.publish("new-transfers", { from: "A-1", to: "A-2", amount: 25 }, { headers: { h: "v" } });
    void (ack.topic + ack.partition + ack.offset);
  } catch (e) {
    if (e instanceof BridgeError && e.code === "disconnected") void 0;
  }
  client.on("token_expiring", (e) => void (e.expiresAt ?? 0));
  const refreshed: { expiresAt: number | null } = await client.refresh("eyJ...");
  void (refreshed.expiresAt ?? client.expiresAt);
  sub.unsubscribe();
  client.reconnect();
  await client.close();
}
void example;

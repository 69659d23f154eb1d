// Type declarations for kafka-ws-bridge.js (the kafka-ws-bridge client, protocol v1).

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Partition -> last offset seen. Object keys are partition numbers in decimal. */
export type Positions = Record<string, number>;

/** Error codes of the bridge's `error` frames, and the client's own. */
export type ErrorCode =
  | "bad_request"
  | "unknown_channel"
  | "forbidden"
  /** refresh: the new token does not verify (expired, bad signature, unknown key...). */
  | "unauthorized"
  | "too_large"
  | "rate_limited"
  | "invalid"
  | "unavailable"
  | "internal"
  /** publish: no ack within `timeoutMs` (the record may still be written). */
  | "timeout"
  /** publish: not connected, or the connection dropped before the ack (the record may be written). */
  | "disconnected"
  /** Subscription.ready after unsubscribe(). */
  | "closed"
  /** getToken() threw or rejected; the client retries with backoff. */
  | "token"
  /** The bridge sent something this client cannot read, or the WebSocket could not be created. */
  | "protocol"
  /** An application callback or event listener threw (the exception is in `cause`). */
  | "callback";

export class BridgeError extends Error {
  constructor(code: ErrorCode | string, message: string, frame?: ErrorFrame);
  readonly name: "BridgeError";
  readonly code: ErrorCode | string;
  /** The bridge's `error` frame, when the error came from one. */
  readonly frame?: ErrorFrame;
  /** The refused subscription (subscribe errors). */
  subscription?: Subscription;
  cause?: unknown;
}

// ---- frames (docs/protocol.md) -------------------------------------------------------------

export interface WelcomeFrame {
  type: "welcome";
  session: string;
  user: string | null;
  protocol: number;
}

export interface SnapshotValue<T = Json> {
  data: T;
  partition: number;
  offset: number;
}

export interface SubscribedFrame<T = Json> {
  type: "subscribed";
  id: string;
  channel: string;
  /** by_key channels: the key (the user's own id when subscribed without one). */
  key?: string;
  /** by_key channels with `snapshot: true`: the key's current value, or null. */
  snapshot: SnapshotValue<T> | null;
  /** Number of `message` frames replayed before live ones. */
  replayed: number;
  /** The replay is incomplete: records were lost for this subscription. */
  gap: boolean;
  /** Partition -> offset after which live records continue (the replay included); absent on
   * bridges before 0.1. The client counts these as seen once the replay is consumed. */
  positions?: Record<string, number>;
}

export interface MessageFrame<T = Json> {
  type: "message";
  channel: string;
  key?: string;
  data: T;
  partition: number;
  offset: number;
  /** Kafka timestamp in milliseconds. */
  timestamp: number | null;
  /** The Schema Registry id the record was written with (channels of format avro, protobuf,
   * json_schema only). */
  schema_id?: number;
  headers: Record<string, string | null>;
}

export interface ErrorFrame {
  type: "error";
  id?: string | number;
  code: string;
  message: string;
}

// ---- client --------------------------------------------------------------------------------

/** Minimal WebSocket constructor: the browser's, Node >= 22's global, or the `ws` package's. */
export interface WebSocketConstructor {
  new (url: string): WebSocketLike;
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean: boolean }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export interface ConnectOptions {
  /** A JWT sent as `?access_token=` (auth.mode: jwt). Ignored when `getToken` is given. */
  token?: string | null;
  /** Called before every connect and reconnect, and on `token_expiring` for the in-band
   *  refresh; return a fresh JWT (or null for none). */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** Default: `globalThis.WebSocket`. Required on Node 20/21, e.g. `WebSocket` from `ws`. */
  WebSocket?: WebSocketConstructor;
  /** Backoff between reconnect attempts (jittered, doubling); `false`: never reconnect.
   *  Default: { minDelayMs: 500, maxDelayMs: 30000 }. */
  reconnect?: false | { minDelayMs?: number; maxDelayMs?: number };
  /** Application-level ping; a connection silent for intervalMs + timeoutMs is dropped and
   *  reconnected. `false` turns it off. Default: { intervalMs: 25000, timeoutMs: 10000 }. */
  heartbeat?: false | { intervalMs?: number; timeoutMs?: number };
  /** Default timeout of publish(), in ms. Default 10000. */
  publishTimeoutMs?: number;
}

export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

export interface OpenEvent {
  session: string;
  user: string | null;
  protocol: number;
  /** False for the first session of this client. */
  reconnected: boolean;
  welcome: WelcomeFrame;
}

export interface CloseEvent {
  /** WebSocket close code: 1001 bridge shutting down, 4000 replaced, 4001 too slow,
   *  4002 token expired, 1006 connection lost or handshake refused, ... */
  code: number;
  reason: string;
  wasClean: boolean;
  /** Whether the client will reconnect on its own. */
  willReconnect: boolean;
}

export interface ReconnectingEvent {
  /** 1 for the first attempt after a welcome. */
  attempt: number;
  delayMs: number;
}

export interface GapEvent {
  subscription: Subscription;
  channel: string;
  key: string | null;
  frame: SubscribedFrame;
}

export interface ClientEvents {
  open: OpenEvent;
  close: CloseEvent;
  reconnecting: ReconnectingEvent;
  /** Another session of the same user took over (close 4000): no automatic reconnect. */
  session_replaced: { code: number; reason: string };
  /** The token expired (close 4002): reconnects at once when `getToken` is set, else stops.
   *  With `getToken` this happens only when the in-band refresh failed. */
  token_expired: { code: number; reason: string };
  /** The bridge ends the session at `expiresAt` (ms since the epoch) unless it gets a fresh
   *  token: with `getToken` the client refreshes by itself, else call `refresh(token)`. */
  token_expiring: { expiresAt: number | null };
  /** The session runs on a fresh token, until `expiresAt`. */
  token_refreshed: { expiresAt: number | null };
  /** A resume could not replay everything missed: reload from the source of truth. */
  gap: GapEvent;
  error: BridgeError;
  state: ClientState;
}

export interface Ack {
  /** The publish id (also the record's `correlation-id` header). */
  id: string | number;
  topic: string;
  partition: number;
  /** null in the rare case Kafka did not report it again (a retried write it had already). */
  offset: number | null;
}

export interface PublishOptions {
  /** Record headers (the names bridge-user, bridge-session, correlation-id are reserved). */
  headers?: Record<string, string>;
  /** Default: the client's publishTimeoutMs. */
  timeoutMs?: number;
  /** Request id, for retrying with the same correlation-id. Default: generated. */
  id?: string | number;
}

export interface SnapshotInfo {
  channel: string;
  key: string | null;
  partition: number;
  offset: number;
}

export interface SubscribeOptions<T = Json> {
  /** by_key channels: the key (strings, or integers used in decimal); default: the user's id. */
  key?: string | number;
  /** The newest N records first (first subscribe only; later ones resume). */
  history?: number;
  /** Partition -> last offset seen, saved from an earlier page load (`positions`): the first
   * subscribe resumes after them instead of asking for `history`. */
  resume?: Record<string, number>;
  /** Each record, once, in offset order per partition. */
  onMessage?: (data: T, frame: MessageFrame<T>) => void;
  /** by_key snapshot channels: the key's current value, at the first subscribe. */
  onSnapshot?: (data: T, info: SnapshotInfo) => void;
  /** Every `subscribed` frame (the first one and those of resumes). */
  onSubscribed?: (frame: SubscribedFrame<T>) => void;
  /** The bridge refused the subscription (it is then removed). Without it: the client's "error". */
  onError?: (error: BridgeError) => void;
}

export interface Subscription {
  readonly channel: string;
  /** The key: the bridge's answer once subscribed (the user's id when none was given). */
  readonly key: string | null;
  /** Partition -> last offset seen (a copy). */
  readonly positions: Positions;
  /** Subscribed in the current session. */
  readonly active: boolean;
  /** Resolves with the first `subscribed` frame; rejects with the refusal. */
  readonly ready: Promise<SubscribedFrame>;
  unsubscribe(): void;
}

export class BridgeClient {
  constructor(url: string | URL, options?: ConnectOptions);
  readonly state: ClientState;
  /** From the current session's welcome; null when not open. */
  session: string | null;
  user: string | null;
  /** When the session's token runs out (ms since the epoch), as the bridge last said
   *  (`token_expiring`, `refreshed`); null while unknown or not open. */
  expiresAt: number | null;
  readonly subscriptions: Subscription[];
  on<E extends keyof ClientEvents>(event: E, listener: (payload: ClientEvents[E]) => void): () => void;
  off<E extends keyof ClientEvents>(event: E, listener: (payload: ClientEvents[E]) => void): void;
  subscribe<T = Json>(channel: string, options?: SubscribeOptions<T>): Subscription;
  /** Sends `data` (any JSON-serializable value) to an inbound channel. Resolves once Kafka has
   *  the record; rejects with a BridgeError (`code`), `disconnected` at once when not open. */
  publish(channel: string, data: unknown, options?: PublishOptions): Promise<Ack>;
  /** Hands the bridge a fresh token of the same user for this session, without reconnecting.
   *  Rejects with `unauthorized` (the token does not verify) or `forbidden` (another user). */
  refresh(token: string): Promise<{ expiresAt: number | null }>;
  /** Drops the connection if any and connects now (also after close or session_replaced). */
  reconnect(): void;
  /** Closes for good; resolves when the socket is closed. */
  close(): Promise<void>;
}

/** Connects at once. `url`: ws(s)://, http(s)://, or relative to the page (`/ws`). */
export function connect(url: string | URL, options?: ConnectOptions): BridgeClient;

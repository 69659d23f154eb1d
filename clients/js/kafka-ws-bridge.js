// kafka-ws-bridge client: one WebSocket to the bridge carrying every subscription and publish,
// with automatic reconnect (jittered exponential backoff) and gap-free, duplicate-free resume.
// Dependency-free ES module for browsers and Node >= 20 (pass `WebSocket` on Node < 22).
// Protocol: docs/protocol.md. Guide and API reference: docs/frontend.md.

const OPEN = 1; // WebSocket.OPEN

const DEFAULT_RECONNECT = { minDelayMs: 500, maxDelayMs: 30000 };
const DEFAULT_HEARTBEAT = { intervalMs: 25000, timeoutMs: 10000 };
const DEFAULT_PUBLISH_TIMEOUT_MS = 10000;

const CLOSE_TIMEOUT_MS = 3000; // close(): how long to wait for the closing handshake

const CLOSE_REPLACED = 4000;
const CLOSE_TOKEN_EXPIRED = 4002;

/** An error with a machine-readable `code`: a protocol error code (`forbidden`, ...) or one of
 * the client's own: `timeout`, `disconnected`, `closed`, `token`, `protocol`, `callback`. */
export class BridgeError extends Error {
  constructor(code, message, frame) {
    super(message);
    this.name = "BridgeError";
    this.code = code;
    if (frame !== undefined) this.frame = frame;
  }
}

/** Connects to the bridge (immediately) and returns the client. */
export function connect(url, options = {}) {
  return new BridgeClient(url, options);
}

function randomHex(bytes) {
  const buf = new Uint8Array(bytes);
  if (globalThis.crypto && typeof globalThis.crypto.getRandomValues === "function") {
    globalThis.crypto.getRandomValues(buf);
  } else {
    for (let i = 0; i < bytes; i++) buf[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Absolute ws(s):// URL from `url`, which may be relative to the page (`/ws`) or http(s). */
function resolveUrl(url) {
  const base = globalThis.location && globalThis.location.href;
  const resolved = base ? new URL(String(url), base) : new URL(String(url));
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  else if (resolved.protocol === "https:") resolved.protocol = "wss:";
  return resolved;
}

function normalizeKey(key) {
  return key === undefined || key === null ? null : String(key);
}

export class BridgeClient {
  #url;
  #WebSocket;
  #token;
  #getToken;
  #reconnect;
  #heartbeat;
  #publishTimeoutMs;

  #ws = null;
  #state = "connecting";
  #generation = 0; // increments per connection attempt; stale callbacks compare against it
  #attempt = 0; // failed attempts since the last welcome, for the backoff
  #reconnectTimer = null;
  #heartbeatTimer = null;
  #pongTimer = null;
  #closeTimer = null;
  #stopped = false; // close() called, or a close that must not be retried
  #replaced = false; // session_replaced received on the current socket
  #welcomes = 0;
  #closeWaiters = [];

  #listeners = new Map(); // event -> Set<fn>
  #subscriptions = new Map(); // channel -> Set<Subscription>
  #pending = new Map(); // request id -> { kind, ... }
  #idPrefix = randomHex(6);
  #nextId = 1;

  /** The session id and user of the current session (from `welcome`); null when not open. */
  session = null;
  user = null;
  /** When the bridge ends the session unless it gets a fresh token (ms since the epoch, from
   * `token_expiring` and `refreshed`); null while unknown. */
  expiresAt = null;

  constructor(url, options = {}) {
    const WS = options.WebSocket || globalThis.WebSocket;
    if (typeof WS !== "function") {
      throw new TypeError(
        "kafka-ws-bridge: no WebSocket implementation; pass options.WebSocket " +
          "(e.g. `import { WebSocket } from \"ws\"` on Node < 22)",
      );
    }
    this.#url = url;
    this.#WebSocket = WS;
    this.#token = options.token ?? null;
    this.#getToken = typeof options.getToken === "function" ? options.getToken : null;
    this.#reconnect =
      options.reconnect === false ? null : { ...DEFAULT_RECONNECT, ...(options.reconnect || {}) };
    this.#heartbeat =
      options.heartbeat === false ? null : { ...DEFAULT_HEARTBEAT, ...(options.heartbeat || {}) };
    if (this.#heartbeat && !(this.#heartbeat.intervalMs > 0)) this.#heartbeat = null;
    this.#publishTimeoutMs = options.publishTimeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS;
    resolveUrl(url); // fail fast on a URL that cannot work
    this.#open();
  }

  /** "connecting" | "open" | "reconnecting" | "closed". */
  get state() {
    return this.#state;
  }

  // ---- events ------------------------------------------------------------------------------

  /** Adds a listener; returns a function that removes it. */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  off(event, listener) {
    const set = this.#listeners.get(event);
    if (set) set.delete(listener);
  }

  #emit(event, payload) {
    const set = this.#listeners.get(event);
    if (!set || set.size === 0) {
      if (event === "error") console.error("kafka-ws-bridge:", payload);
      return;
    }
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (e) {
        if (event === "error") console.error("kafka-ws-bridge: an error listener threw", e);
        else this.#emit("error", callbackError(e, `"${event}" listener`));
      }
    }
  }

  /** Runs an application callback, reporting what it throws as an "error" event. */
  #call(fn, what, ...args) {
    if (typeof fn !== "function") return;
    try {
      fn(...args);
    } catch (e) {
      this.#emit("error", callbackError(e, what));
    }
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit("state", state);
  }

  // ---- connection ----------------------------------------------------------------------------

  async #open() {
    const generation = ++this.#generation;
    this.#setState(this.#welcomes > 0 ? "reconnecting" : "connecting");
    let token = this.#token;
    if (this.#getToken) {
      try {
        token = await this.#getToken();
      } catch (e) {
        if (generation !== this.#generation || this.#stopped) return;
        const error = new BridgeError("token", `getToken failed: ${e && e.message ? e.message : e}`);
        error.cause = e;
        this.#emit("error", error);
        this.#scheduleReconnect();
        return;
      }
      if (generation !== this.#generation || this.#stopped) return;
    }
    const url = resolveUrl(this.#url);
    if (token) url.searchParams.set("access_token", token);
    let ws;
    try {
      ws = new this.#WebSocket(url.toString());
    } catch (e) {
      this.#emit("error", Object.assign(new BridgeError("protocol", String(e && e.message)), { cause: e }));
      this.#scheduleReconnect();
      return;
    }
    this.#ws = ws;
    this.#replaced = false;
    ws.onmessage = (event) => {
      if (this.#ws === ws) this.#onData(event.data);
    };
    ws.onclose = (event) => {
      if (this.#ws === ws) this.#onClose(event.code, event.reason, event.wasClean);
    };
    ws.onerror = () => {}; // a close event follows; browsers give no detail here
  }

  #scheduleReconnect(delayMs) {
    clearTimeout(this.#reconnectTimer);
    if (this.#stopped || !this.#reconnect) {
      this.#stop();
      return;
    }
    if (delayMs === undefined) {
      const { minDelayMs, maxDelayMs } = this.#reconnect;
      const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(this.#attempt, 30));
      delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    }
    this.#attempt += 1;
    this.#setState("reconnecting");
    this.#emit("reconnecting", { attempt: this.#attempt, delayMs });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (!this.#stopped) this.#open();
    }, delayMs);
  }

  #onClose(code, reason, wasClean) {
    this.#ws = null;
    clearTimeout(this.#closeTimer);
    this.#stopHeartbeat();
    this.session = null;
    this.user = null;
    this.expiresAt = null;
    this.#failPending("disconnected", `connection closed (${code}${reason ? ` ${reason}` : ""})`);
    for (const subs of this.#subscriptions.values()) {
      for (const sub of subs) sub._detach();
    }
    const replaced = this.#replaced || code === CLOSE_REPLACED;
    const expired = code === CLOSE_TOKEN_EXPIRED;
    let willReconnect = !this.#stopped && !!this.#reconnect && !replaced;
    if (expired && !this.#getToken) willReconnect = false; // the same token would be refused
    this.#emit("close", { code, reason: reason || "", wasClean: !!wasClean, willReconnect });
    if (replaced) this.#emit("session_replaced", { code, reason: reason || "" });
    if (expired) this.#emit("token_expired", { code, reason: reason || "" });
    if (willReconnect) {
      this.#scheduleReconnect(expired ? 0 : undefined);
    } else {
      this.#stop();
    }
  }

  #stop() {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#setState("closed");
    const waiters = this.#closeWaiters.splice(0);
    for (const resolve of waiters) resolve();
  }

  /** Drops the current connection (if any) and connects again now: also after close(),
   * session_replaced or a token expiry without getToken. Subscriptions resume. */
  reconnect() {
    this.#stopped = false;
    this.#attempt = 0;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const ws = this.#ws;
    if (ws) {
      this.#ws = null;
      this.#stopHeartbeat();
      this.session = null;
      this.user = null;
      this.#failPending("disconnected", "reconnecting");
      for (const subs of this.#subscriptions.values()) for (const sub of subs) sub._detach();
      try {
        ws.close(1000, "reconnecting");
      } catch {
        // already closing
      }
      this.#emit("close", { code: 1000, reason: "reconnecting", wasClean: true, willReconnect: true });
    }
    this.#open();
  }

  /** Closes the connection for good (no reconnect); resolves once the socket is closed.
   * Subscriptions are kept, so a later reconnect() resumes them. */
  close() {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#generation++; // a getToken in progress must not open a socket
    const done = new Promise((resolve) => this.#closeWaiters.push(resolve));
    const ws = this.#ws;
    if (ws) {
      try {
        ws.close(1000, "client closed");
      } catch {
        // closed already; the fallback below finishes
      }
      // A dead connection may never complete the closing handshake: do not wait for it.
      clearTimeout(this.#closeTimer);
      this.#closeTimer = setTimeout(() => {
        if (this.#ws === ws) this.#onClose(1006, "client closed (no closing handshake)", false);
      }, CLOSE_TIMEOUT_MS);
    } else {
      this.#stop();
    }
    return done;
  }

  // ---- heartbeat -----------------------------------------------------------------------------

  #startHeartbeat() {
    this.#stopHeartbeat();
    if (!this.#heartbeat) return;
    this.#heartbeatTimer = setInterval(() => {
      if (this.#pongTimer || !this.#ws) return;
      this.#send({ type: "ping", id: this.#newId("h") });
      const ws = this.#ws;
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = null;
        if (this.#ws !== ws) return;
        // Nothing heard: the connection is dead without the transport knowing. Drop it.
        try {
          ws.close();
        } catch {
          // ignore
        }
        this.#onClose(1006, "heartbeat timeout", false);
      }, this.#heartbeat.timeoutMs);
    }, this.#heartbeat.intervalMs);
    if (typeof this.#heartbeatTimer === "object" && this.#heartbeatTimer.unref) this.#heartbeatTimer.unref();
  }

  #stopHeartbeat() {
    clearInterval(this.#heartbeatTimer);
    clearTimeout(this.#pongTimer);
    this.#heartbeatTimer = null;
    this.#pongTimer = null;
  }

  // ---- frames --------------------------------------------------------------------------------

  #newId(kind) {
    return `${kind}-${this.#idPrefix}-${this.#nextId++}`;
  }

  #send(frame) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  #onData(data) {
    // Any frame proves the connection alive.
    if (this.#pongTimer) {
      clearTimeout(this.#pongTimer);
      this.#pongTimer = null;
    }
    let frame;
    try {
      frame = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      this.#emit("error", new BridgeError("protocol", "the bridge sent a frame that is not JSON"));
      return;
    }
    switch (frame && frame.type) {
      case "welcome":
        return this.#onWelcome(frame);
      case "subscribed":
        return this.#onSubscribed(frame);
      case "message":
        return this.#onMessage(frame);
      case "ack":
        return this.#onAck(frame);
      case "error":
        return this.#onError(frame);
      case "session_replaced":
        this.#replaced = true;
        return;
      case "token_expiring":
        return this.#onTokenExpiring(frame);
      case "refreshed":
        return this.#onRefreshed(frame);
      case "unsubscribed":
        if (frame.reason) this.#onEnded(frame);
        return;
      default:
        // pong, and types this client does not know (newer bridges): nothing to do.
        return;
    }
  }

  #onWelcome(frame) {
    this.#attempt = 0;
    this.session = frame.session ?? null;
    this.user = frame.user ?? null;
    const reconnected = this.#welcomes > 0;
    this.#welcomes += 1;
    this.#setState("open");
    this.#startHeartbeat();
    for (const subs of this.#subscriptions.values()) {
      for (const sub of subs) this.#sendSubscribe(sub);
    }
    this.#emit("open", {
      session: this.session,
      user: this.user,
      protocol: frame.protocol,
      reconnected,
      welcome: frame,
    });
  }

  #sendSubscribe(sub) {
    const id = this.#newId("s");
    const frame = { type: "subscribe", id, channel: sub.channel };
    if (sub._requestedKey !== null) frame.key = sub._requestedKey;
    const resumed = (sub._confirmed || sub._resumeFirst) && !sub._noResume;
    if (resumed) frame.resume = sub.positions;
    else if (sub._history > 0) frame.history = sub._history;
    this.#pending.set(id, { kind: "subscribe", sub, resumed });
    sub._requestId = id;
    this.#send(frame);
  }

  #onSubscribed(frame) {
    const request = this.#pending.get(frame.id);
    if (!request || request.kind !== "subscribe") return;
    this.#pending.delete(frame.id);
    const sub = request.sub;
    if (sub._closed || sub._requestId !== frame.id) return;
    const replayed = frame.replayed | 0;
    // Other subscriptions of this channel and key in this client: the replay that follows was
    // asked for by this one, they skip it (the bridge delivers each record once per session).
    for (const other of this.#subscriptions.get(sub.channel) || []) {
      if (other !== sub && other._active && other._matchesKey(frame.key ?? null)) other._skip += replayed;
    }
    const first = !sub._confirmed;
    sub._attach(frame);
    if (first) {
      if (frame.snapshot) {
        const snapshot = frame.snapshot;
        // The current value counts as seen — once the replay (history, which ends with this
        // very record) has been delivered.
        sub._deferPosition(snapshot.partition, snapshot.offset);
        this.#call(sub._onSnapshot, "onSnapshot", snapshot.data, {
          channel: sub.channel,
          key: sub.key,
          partition: snapshot.partition,
          offset: snapshot.offset,
        });
      }
      sub._resolveReady(frame);
    }
    this.#call(sub._onSubscribed, "onSubscribed", frame);
    if (frame.gap && request.resumed) {
      this.#emit("gap", { subscription: sub, channel: sub.channel, key: sub.key, frame });
    }
  }

  #onMessage(frame) {
    const subs = this.#subscriptions.get(frame.channel);
    if (!subs) return;
    const key = frame.key ?? null;
    for (const sub of [...subs]) {
      if (!sub._active || !sub._matchesKey(key)) continue;
      if (sub._accept(frame)) this.#call(sub._onMessage, "onMessage", frame.data, frame);
    }
  }

  #onAck(frame) {
    const request = this.#pending.get(frame.id);
    if (!request || request.kind !== "publish") return;
    this.#pending.delete(frame.id);
    clearTimeout(request.timer);
    request.resolve({ id: frame.id, topic: frame.topic, partition: frame.partition, offset: frame.offset });
  }

  #onError(frame) {
    const error = new BridgeError(frame.code || "unknown", frame.message || frame.code || "error", frame);
    const request = frame.id !== undefined ? this.#pending.get(frame.id) : undefined;
    if (!request) {
      this.#emit("error", error);
      return;
    }
    this.#pending.delete(frame.id);
    if (request.kind === "publish" || request.kind === "refresh") {
      clearTimeout(request.timer);
      request.reject(error);
    } else if (request.kind === "subscribe") {
      const sub = request.sub;
      if (sub._closed || sub._requestId !== frame.id) return;
      if (request.resumed && error.code === "bad_request" && !sub._noResume) {
        // Reply channels refuse `resume` (they keep nothing to replay): subscribe live instead.
        sub._noResume = true;
        this.#sendSubscribe(sub);
        return;
      }
      // Refused (forbidden, unknown channel, ...): the subscription ends, it is not retried.
      error.subscription = sub;
      this.#remove(sub);
      sub._fail(error);
      if (typeof sub._onError === "function") this.#call(sub._onError, "onError", error);
      else this.#emit("error", error);
    }
  }

  // ---- token refresh (in-band, no reconnect) -----------------------------------------------

  #onTokenExpiring(frame) {
    this.expiresAt = frame.expires_at ?? null;
    this.#emit("token_expiring", { expiresAt: this.expiresAt });
    // Without getToken the application may call refresh(token); otherwise the bridge closes the
    // session at expiresAt (4002).
    if (!this.#getToken) return;
    const generation = this.#generation;
    Promise.resolve()
      .then(() => this.#getToken())
      .then((token) => {
        if (generation !== this.#generation || this.#state !== "open") return undefined;
        return this.refresh(token);
      })
      .catch((e) => {
        // The session then ends at expiry (4002) and the client reconnects with getToken: the
        // fallback, visible to the application as a reconnect.
        const error =
          e instanceof BridgeError ? e : new BridgeError("token", `token refresh failed: ${e && e.message ? e.message : e}`);
        if (error !== e) error.cause = e;
        this.#emit("error", error);
      });
  }

  #onRefreshed(frame) {
    const request = this.#pending.get(frame.id);
    if (!request || request.kind !== "refresh") return;
    this.#pending.delete(frame.id);
    clearTimeout(request.timer);
    // A static token is replaced by the fresher one for later reconnects.
    if (!this.#getToken) this.#token = request.token;
    this.expiresAt = frame.expires_at ?? null;
    const info = { expiresAt: this.expiresAt };
    this.#emit("token_refreshed", info);
    request.resolve(info);
  }

  /** A subscription the bridge ended (`unsubscribed` with a reason: `forbidden` after a
   * refreshed token no longer allows it). It is not retried. */
  #onEnded(frame) {
    const key = frame.key ?? null;
    for (const sub of [...(this.#subscriptions.get(frame.channel) || [])]) {
      if (!sub._matchesKey(key)) continue;
      const error = new BridgeError(
        frame.reason,
        `subscription to ${frame.channel}${key === null ? "" : ` key ${key}`} ended by the bridge: ${frame.reason}`,
        frame,
      );
      error.subscription = sub;
      this.#remove(sub);
      sub._fail(error);
      if (typeof sub._onError === "function") this.#call(sub._onError, "onError", error);
      else this.#emit("error", error);
    }
  }

  /** Hands the bridge a fresh token for this session (the same user) without reconnecting;
   * resolves with `{ expiresAt }`. With `getToken` the client does this by itself on
   * `token_expiring`. */
  refresh(token) {
    if (this.#state !== "open") {
      return Promise.reject(new BridgeError("disconnected", `not connected (${this.#state}): refresh not sent`));
    }
    if (typeof token !== "string" || token === "") {
      return Promise.reject(new TypeError("refresh: token must be a non-empty string"));
    }
    const id = this.#newId("r");
    const timeoutMs = this.#publishTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending.get(id)?.timer !== timer) return;
        this.#pending.delete(id);
        reject(new BridgeError("timeout", `refresh ${id} not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { kind: "refresh", resolve, reject, timer, token });
      this.#send({ type: "refresh", id, token });
    });
  }

  #failPending(code, message) {
    for (const [id, request] of this.#pending) {
      if (request.kind === "publish" || request.kind === "refresh") {
        clearTimeout(request.timer);
        request.reject(new BridgeError(code, `${request.kind} ${id} not answered: ${message}`));
      }
    }
    this.#pending.clear();
  }

  // ---- public API ----------------------------------------------------------------------------

  /** Subscribes to a channel (and key, on by_key channels); resumes after every reconnect. */
  subscribe(channel, options = {}) {
    if (typeof channel !== "string" || channel === "") throw new TypeError("channel must be a non-empty string");
    const sub = new Subscription(this, channel, options, (s) => this.#remove(s, true));
    let set = this.#subscriptions.get(channel);
    if (!set) this.#subscriptions.set(channel, (set = new Set()));
    set.add(sub);
    if (this.#state === "open") this.#sendSubscribe(sub);
    return sub;
  }

  #remove(sub, sendUnsubscribe = false) {
    const set = this.#subscriptions.get(sub.channel);
    if (!set || !set.delete(sub)) return;
    if (set.size === 0) this.#subscriptions.delete(sub.channel);
    const onWire = sub._active || sub._requestId !== null; // subscribed, or asked, this session
    if (sub._requestId) this.#pending.delete(sub._requestId);
    if (!sendUnsubscribe || !onWire) return;
    // Other subscriptions of the same channel and key keep the bridge's subscription alive.
    for (const other of set) if (other._matchesKey(sub.key)) return;
    const frame = { type: "unsubscribe", id: this.#newId("u"), channel: sub.channel };
    if (sub.key !== null) frame.key = sub.key;
    this.#send(frame);
  }

  /** Publishes `data` on an inbound channel; resolves with the ack once Kafka has the record. */
  publish(channel, data, options = {}) {
    if (this.#state !== "open") {
      return Promise.reject(
        new BridgeError("disconnected", `not connected (${this.#state}): publish on \`${channel}\` not sent`),
      );
    }
    if (data === undefined) return Promise.reject(new TypeError("publish: data is undefined"));
    const id = options.id ?? this.#newId("p");
    if (this.#pending.has(id)) {
      return Promise.reject(new BridgeError("bad_request", `a request with id ${JSON.stringify(id)} is already waiting`));
    }
    const frame = { type: "publish", id, channel, data };
    if (options.headers) frame.headers = options.headers;
    let text;
    try {
      text = JSON.stringify(frame);
    } catch (e) {
      return Promise.reject(e);
    }
    const timeoutMs = options.timeoutMs ?? this.#publishTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending.get(id)?.timer !== timer) return;
        this.#pending.delete(id);
        reject(new BridgeError("timeout", `publish ${id} not acknowledged within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { kind: "publish", resolve, reject, timer });
      this.#ws.send(text);
    });
  }

  /** Every live subscription. */
  get subscriptions() {
    return [...this.#subscriptions.values()].flatMap((set) => [...set]);
  }
}

function callbackError(cause, what) {
  const error = new BridgeError("callback", `${what} threw: ${cause && cause.message ? cause.message : cause}`);
  error.cause = cause;
  return error;
}

/** One subscription: positions seen per partition, callbacks, and its unsubscribe(). */
class Subscription {
  #client;
  #remove;
  #positions = Object.create(null); // partition -> last offset seen
  #livePositions = null; // `subscribed.positions`, applied after the replay
  #deferred = null; // snapshot position applied once the first replay is delivered
  #ready;
  #settle;
  #key;

  constructor(client, channel, options, remove) {
    this.#client = client;
    this.#remove = remove;
    this.channel = channel;
    this._requestedKey = normalizeKey(options.key);
    this.#key = this._requestedKey;
    this._history = Math.max(0, Math.floor(Number(options.history) || 0));
    // Positions saved from an earlier page load (e.g. in localStorage): the first subscribe
    // resumes after them instead of asking for history, and older records are dropped.
    this._resumeFirst = false;
    if (options.resume && typeof options.resume === "object") {
      for (const [partition, offset] of Object.entries(options.resume)) {
        if (Number.isInteger(offset)) {
          this.#positions[partition] = offset;
          this._resumeFirst = true;
        }
      }
    }
    this._onMessage = options.onMessage;
    this._onSnapshot = options.onSnapshot;
    this._onSubscribed = options.onSubscribed;
    this._onError = options.onError;
    this._confirmed = false; // answered `subscribed` at least once: later subscribes resume
    this._noResume = false; // the bridge refused a resume (reply channel): resubscribe live
    this._active = false; // subscribed in the current session
    this._closed = false;
    this._requestId = null;
    this._replayLeft = 0;
    this._skip = 0;
    this.#ready = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    this.#ready.catch(() => {}); // awaiting it is optional
  }

  /** The key (the bridge's answer, so the user's own id when subscribed without a key). */
  get key() {
    return this.#key;
  }

  /** Partition -> last offset seen (a copy): what a resume asks to continue after. */
  get positions() {
    const copy = {};
    for (const p of Object.keys(this.#positions)) copy[p] = this.#positions[p];
    return copy;
  }

  /** True while subscribed in the current session. */
  get active() {
    return this._active && !this._closed;
  }

  /** Resolves with the first `subscribed` frame; rejects if the bridge refuses. */
  get ready() {
    return this.#ready;
  }

  unsubscribe() {
    if (this._closed) return;
    this.#remove(this);
    this._closed = true;
    this._active = false;
    this._requestId = null;
    this.#settle.reject(new BridgeError("closed", "unsubscribed"));
  }

  _matchesKey(key) {
    // Broadcast/reply subscriptions (no key) get every record of the channel.
    return this.#key === null || this.#key === key;
  }

  _attach(frame) {
    this._confirmed = true;
    this._active = true;
    this._requestId = null;
    this._replayLeft = frame.replayed | 0;
    this._skip = 0;
    if (frame.key !== undefined && frame.key !== null) this.#key = String(frame.key);
    // Where live delivery continues on each partition (also those nothing arrived from):
    // counted as seen once the replay has been consumed, so a later resume starts exactly there.
    this.#livePositions = frame.positions && typeof frame.positions === "object" ? frame.positions : null;
    if (this._replayLeft === 0) this.#applyLivePositions();
  }

  #applyLivePositions() {
    const live = this.#livePositions;
    this.#livePositions = null;
    if (!live) return;
    for (const [partition, offset] of Object.entries(live)) {
      if (typeof offset === "number" && !(this.#positions[partition] >= offset)) this.#positions[partition] = offset;
    }
  }

  _detach() {
    this._active = false;
    this._requestId = null;
    this._replayLeft = 0;
    this._skip = 0;
  }

  _deferPosition(partition, offset) {
    this.#deferred = { partition, offset };
    if (this._replayLeft === 0) this.#applyDeferred();
  }

  #applyDeferred() {
    const d = this.#deferred;
    this.#deferred = null;
    if (d && !(this.#positions[d.partition] >= d.offset)) this.#positions[d.partition] = d.offset;
  }

  /** Records a message; false when it is a duplicate (or another subscription's replay). */
  _accept(frame) {
    if (this._skip > 0) {
      this._skip -= 1;
      return false;
    }
    let fresh = true;
    const last = this.#positions[frame.partition];
    if (typeof frame.offset === "number" && frame.partition !== undefined) {
      if (last !== undefined && frame.offset <= last) fresh = false;
      else this.#positions[frame.partition] = frame.offset;
    }
    if (this._replayLeft > 0) {
      this._replayLeft -= 1;
      if (this._replayLeft === 0) {
        this.#applyDeferred();
        this.#applyLivePositions();
      }
    }
    return fresh;
  }

  _resolveReady(frame) {
    this.#settle.resolve(frame);
  }

  _fail(error) {
    this._closed = true;
    this._active = false;
    this.#settle.reject(error);
  }
}

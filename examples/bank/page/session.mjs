// What the two micro-frontends share: the token (from the page's #token=…, as an identity
// provider's redirect would hand it), the bridge's address, and the user's claims for display.
// Each micro-frontend still opens its own connection, as each SignalR hub client did, naming
// itself with `?app=`: the bridge keeps one session per user and app (bridge.yaml).

import { connect } from "/client/kafka-ws-bridge.js";

const params = new URLSearchParams(location.search);
export const token = new URLSearchParams(location.hash.slice(1)).get("token");
export const bridgeUrl = params.get("bridge") || `ws://${location.hostname}:8080/ws`;

/** The token's claims, decoded for display only: the bridge verifies the signature. */
export const claims = token ? JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))) : null;
export const isStaff = !!claims && [].concat(claims.roles || []).includes("staff");

/** A connection for micro-frontend `app`, wired to its section's state line and banner. */
export function openConnection(section, app) {
  const url = new URL(bridgeUrl, location.href);
  url.searchParams.set("app", app);
  const client = connect(url.toString(), { token });
  const state = section.querySelector(".state");
  client.on("state", (s) => {
    section.dataset.state = s;
    state.textContent = s;
  });
  client.on("open", ({ session }) => {
    section.dataset.session = session;
  });
  // The same micro-frontend of the same user opened in another browser (on any bridge
  // instance) took over: say so instead of reconnecting.
  client.on("session_replaced", ({ code }) => {
    const banner = section.querySelector(".replaced");
    banner.hidden = false;
    banner.textContent = "Signed out here: your account was opened in another browser.";
    section.dataset.replaced = String(code);
  });
  return client;
}

/** Shows a command failure (or a refused publish/subscription) in a section's error list. */
export function showError(section, text, correlationId) {
  const li = document.createElement("li");
  li.textContent = text;
  if (correlationId) li.dataset.correlationId = correlationId;
  section.querySelector(".errors").append(li);
}

// What the two micro-frontends share: the token (from the page's #token=…, as an identity
// provider's redirect would hand it), the bridge's address, and the user's claims for display.
// Each micro-frontend still opens its own connection, as each SignalR hub client did.

import { connect } from "/client/kafka-ws-bridge.js";

const params = new URLSearchParams(location.search);
export const token = new URLSearchParams(location.hash.slice(1)).get("token");
export const bridgeUrl = params.get("bridge") || `ws://${location.hostname}:8080/ws`;

/** The token's claims, decoded for display only: the bridge verifies the signature. */
export const claims = token ? JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))) : null;
export const isStaff = !!claims && [].concat(claims.roles || []).includes("staff");

/** A connection for one micro-frontend, wired to its section's state line and banner. */
export function openConnection(section) {
  const client = connect(bridgeUrl, { token });
  const state = section.querySelector(".state");
  client.on("state", (s) => {
    section.dataset.state = s;
    state.textContent = s;
  });
  client.on("open", ({ session }) => {
    section.dataset.session = session;
  });
  // A second browser of the same user took over: say so instead of reconnecting.
  client.on("session_replaced", () => {
    const banner = section.querySelector(".replaced");
    banner.hidden = false;
    banner.textContent = "Signed out here: your account was opened in another browser.";
    section.dataset.replaced = "true";
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

// HS256 tokens for the examples, signed with `jose`: in the original systems an identity
// provider issues them; the bridge only verifies (auth.jwt.secret in each bridge.yaml).
//
//   node examples/lib/tokens.mjs SECRET SUB [ROLES] [CUSTOMERS] [TTL_S]   prints one token
//     ROLES and CUSTOMERS are comma-separated lists (or "" for none).

import { SignJWT } from "jose";
import { fileURLToPath } from "node:url";

/** A token for `sub` with optional `roles` and extra claims, valid for `ttlSeconds`. */
export async function mintToken(secret, sub, { roles = [], claims = {}, ttlSeconds = 3600 } = {}) {
  const payload = { ...claims };
  if (roles.length) payload.roles = roles;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [secret, sub, roles = "", customers = "", ttl = "28800"] = process.argv.slice(2);
  if (!secret || !sub) {
    console.error("usage: node examples/lib/tokens.mjs SECRET SUB [ROLES] [CUSTOMERS] [TTL_S]");
    process.exit(2);
  }
  const list = (s) => s.split(",").filter(Boolean);
  const claims = customers ? { customers: list(customers) } : {};
  console.log(await mintToken(secret, sub, { roles: list(roles), claims, ttlSeconds: Number(ttl) }));
}

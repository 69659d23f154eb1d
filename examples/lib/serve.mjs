// Static file server for an example's page: GET / and the files of examples/<name>/page/, the
// project's JS client at /client/kafka-ws-bridge.js (clients/js, read from disk on every
// request), and @stomp/stompjs's ES modules at /vendor/@stomp/stompjs/ (examples/node_modules,
// installed by `npm ci` in examples/; the notifications page imports it through an import map,
// as a bundler would resolve it). Plain Node, no dependency. Nothing here talks to Kafka or the bridge: in production
// these files sit on any web server or CDN (examples/MISSING.md, "serving the page").
//
//   node examples/lib/serve.mjs <name> [port]     prints `serving http://127.0.0.1:PORT/`
//
// Also imported by the tests (startPageServer), which bind port 0.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const examples = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const clientFile = resolve(examples, "..", "clients", "js", "kafka-ws-bridge.js");
// URL prefix → directory of an npm package the pages may load (only these, only below them).
const VENDOR = { "/vendor/@stomp/stompjs/": join(examples, "node_modules", "@stomp", "stompjs") };

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};

/** The file a vendor URL names, or null (not a vendor URL, or outside the package). */
function vendorFile(path) {
  for (const [prefix, dir] of Object.entries(VENDOR)) {
    if (!path.startsWith(prefix)) continue;
    const file = normalize(join(dir, path.slice(prefix.length)));
    return file.startsWith(dir + sep) ? file : null;
  }
  return null;
}

/** Serves examples/<name>/page on 127.0.0.1:<port> (0: any free port). Resolves to { url, close }. */
export function startPageServer(name, port = 0, host = "127.0.0.1") {
  const root = join(examples, name, "page");
  const server = createServer(async (req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let file;
    if (path === "/client/kafka-ws-bridge.js") {
      file = clientFile;
    } else if (path.startsWith("/vendor/")) {
      file = vendorFile(path);
      if (!file) {
        res.writeHead(404).end();
        return;
      }
    } else {
      file = normalize(join(root, path === "/" ? "index.html" : path));
      if (!file.startsWith(root + sep)) {
        res.writeHead(404).end();
        return;
      }
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  });
  return new Promise((resolveServer, reject) => {
    server.on("error", reject);
    server.listen(port, host, () => {
      const url = `http://${host}:${server.address().port}`;
      resolveServer({ url, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [name, port] = process.argv.slice(2);
  if (!name) {
    console.error("usage: node examples/lib/serve.mjs <example> [port]");
    process.exit(2);
  }
  const { url } = await startPageServer(name, Number(port || 0));
  console.log(`serving ${url}/`);
}

// The examples' browser tests: each example in headless Chromium (playwright-core) against a
// real broker (KAFKA_BOOTSTRAP), the bridge binary (BRIDGE_BIN or $CARGO_TARGET_DIR/debug) and
// the example's own backend. Screenshots go to target/examples-artifacts/ (EXAMPLES_ARTIFACTS).
//
//   node examples/test/run.mjs [bank|dashboard|notifications|chat ...]   (default: all four)

import { chromium } from "playwright-core";
import { artifacts, Scope, screenshot } from "./common.mjs";
import { bankTest } from "./bank.mjs";
import { dashboardTest } from "./dashboard.mjs";
import { notificationsTest } from "./notifications.mjs";
import { chatTest } from "./chat.mjs";

const tests = { bank: bankTest, dashboard: dashboardTest, notifications: notificationsTest, chat: chatTest };
const chosen = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(tests);
const started = Date.now();
const watchdog = setTimeout(() => {
  console.error("examples test: timed out after 240 s");
  process.exit(1);
}, 240000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run"],
});
let passed = 0;
let failed = 0;
for (const name of chosen) {
  const test = tests[name];
  if (!test) throw new Error(`no example test named ${name}; known: ${Object.keys(tests).join(", ")}`);
  const scope = new Scope();
  const t = Date.now();
  console.log(`==> example ${name}`);
  try {
    await test(browser, scope);
    passed++;
    console.log(`==> example ${name} passed in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  } catch (e) {
    failed++;
    console.error(`==> example ${name} FAILED: ${e.stack || e}`);
    for (const [i, page] of scope.pages.entries()) {
      try {
        console.error(`    screenshot: ${await screenshot(page, `${name}-failure-${i}.png`)}`);
      } catch {
        // the page may be gone
      }
    }
  } finally {
    await scope.close();
  }
}
await browser.close();
clearTimeout(watchdog);
console.log(`==> screenshots in ${artifacts}`);
console.log(`==> examples took ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`examples: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

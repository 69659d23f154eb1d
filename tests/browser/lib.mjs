// What the Chromium tests share: launching Debian's Chromium headless, and running a test's
// `main` with a watchdog, its steps timed, and its cleanups run in reverse whatever happens.

import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Headless Chromium with the flags these machines need. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  });
}

/**
 * A browser test named `name`: `test.step(text)` prints a timed step, `test.cleanup.push(fn)`
 * registers a cleanup, `test.elapsed()` is the seconds so far, and `test.run(main)` runs it
 * (at most `timeoutMs`), cleans up and exits the process with 0 or 1.
 */
export function browserTest(name, timeoutMs) {
  const started = Date.now();
  const cleanup = [];
  const elapsed = () => ((Date.now() - started) / 1000).toFixed(1);
  return {
    cleanup,
    elapsed,
    step: (text) => console.log(`  ✓ ${text} (${elapsed()} s)`),
    async run(main) {
      const watchdog = setTimeout(() => {
        console.error(`${name} FAILED: still running after ${timeoutMs / 1000} s`);
        process.exit(1);
      }, timeoutMs);
      let failed = false;
      try {
        await main();
      } catch (e) {
        failed = true;
        console.error(`${name} FAILED: ${e.stack || e}`);
      } finally {
        for (const fn of cleanup.reverse()) {
          try {
            await fn();
          } catch {
            // keep cleaning
          }
        }
        clearTimeout(watchdog);
      }
      process.exit(failed ? 1 : 0);
    },
  };
}

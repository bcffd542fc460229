// Opens PatroniYarp's /ui in Debian's headless Chromium and answers commands, one per line on stdin:
//   leader <cluster> <name>   wait until the page shows <name> as the cluster's leader  → "ok" or "error: …"
//   port <name> <text…>      wait until the row of port <name> contains <text>            → "ok" or "error: …"
//   screenshot <path>         save a full-page PNG                                        → "ok"
// Usage: node status-page.mjs <url> [chromium path]. One page stays open, so its own 2 s refresh is what is tested.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [url, executablePath = "/usr/bin/chromium"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "patroniyarp-chromium-"));
// A fresh profile directory each run (Playwright passes it to Chromium as --user-data-dir).
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run"],
  viewport: { width: 1280, height: 620 },
  deviceScaleFactor: 1,
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on("pageerror", e => errors.push(e.message));
  page.on("console", m => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url);
  console.log("ready");
  for await (const line of createInterface({ input: process.stdin })) {
    const [command, ...args] = line.trim().split(/\s+/);
    try {
      if (command === "leader") {
        const [cluster, name] = args;
        const leader = page.locator(`article[data-cluster="${cluster}"] [data-testid="leader"]`);
        await leader.filter({ hasText: new RegExp(`^${name}$`) }).waitFor({ timeout: 30000 });
        if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
        console.log("ok");
      } else if (command === "port") {
        const [name, ...text] = args;
        await page.locator(`tr[data-port="${name}"]`).filter({ hasText: text.join(" ") }).first().waitFor({ timeout: 30000 });
        if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
        console.log("ok");
      } else if (command === "screenshot") {
        await page.screenshot({ path: args[0], fullPage: true });
        console.log("ok");
      } else {
        console.log(`error: unknown command '${command}'`);
      }
    } catch (e) {
      const shown = await page.locator("main").innerText().catch(() => "");
      console.log(`error: ${e.message.split("\n")[0]} | page shows: ${shown.replace(/\s+/g, " ").slice(0, 400)}`);
    }
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

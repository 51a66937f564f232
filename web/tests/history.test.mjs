// A long conversation in the web app: the newest messages first, earlier ones as the reader
// scrolls back, and what was on screen stays in place.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  startServer,
  launchBrowser,
  openWebApp,
  cli,
  synced,
  cliBin,
  registerInApp,
  newConversation,
  say,
  article,
} from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer("history.test");
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a long conversation shows its newest messages and more on scrolling back", async () => {
  const bob = join(mkdtempSync(join(tmpdir(), "missive-bob-")), "home");
  cli(bob, "register", "--server", server.url, "bob@history.test");
  const alice = await openWebApp(browser, server.url);
  const page = alice.page;
  await registerInApp(page, "alice@history.test");
  await (await newConversation(page, "bob@history.test")).waitFor({ state: "detached" });
  await say(page, "tell me everything");
  await article(page, "tell me everything").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  const first = synced(bob).find((m) => m.text === "tell me everything");
  // 120 lines piped into `missive chat`: one process, sent in order.
  const lines = Array.from({ length: 120 }, (_, i) => `point ${i + 1} of 120`);
  execFileSync(cliBin, ["--home", bob, "chat", first.conversation], { input: lines.join("\n") + "\n" });

  const newest = article(page, "point 120 of 120");
  await newest.waitFor({ timeout: 60_000 });
  // The first page: the newest 50, the rest behind "Earlier messages".
  await page.waitForFunction(() => document.querySelectorAll("article").length === 50);
  assert.equal(await article(page, "point 71 of 120").count(), 1);
  assert.equal(await article(page, "point 70 of 120").count(), 0);
  const earlier = page.getByRole("button", { name: "Earlier messages" });
  assert.equal(await earlier.count(), 1);

  // Scrolling to the top loads more, and the message that was first stays on screen.
  await page.locator(".messages").evaluate((box) => (box.scrollTop = 0));
  await article(page, "point 21 of 120").waitFor();
  await article(page, "point 71 of 120").waitFor();
  const inView = await article(page, "point 71 of 120").evaluate((a) => {
    const box = a.closest(".messages").getBoundingClientRect();
    const r = a.getBoundingClientRect();
    return r.bottom > box.top && r.top < box.bottom;
  });
  assert.ok(inView, "the message read before loading more is still in view");
  // Once more, by keyboard: everything, the first message on top, and no button left.
  await earlier.focus();
  await page.keyboard.press("Enter");
  await article(page, "tell me everything").waitFor();
  await earlier.waitFor({ state: "detached" });
  assert.equal(await page.getByRole("article").count(), 121);
  assert.deepEqual(alice.errors, []);
  await alice.context.close();
});

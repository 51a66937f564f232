// Conversations as people expect them, in the web app with someone on the command line:
// replies, edits, reactions, read receipts, deletion for everyone and disappearing messages,
// each seen on the other side.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  startServer,
  launchBrowser,
  openWebApp,
  cli,
  screenshot,
  accessibilityViolations,
  registerInApp,
  newConversation,
  say,
  article,
} from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer("talk.test");
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** `missive sync --json` of a terminal account, as objects. */
function synced(home) {
  return cli(home, "sync", "--json")
    .trim()
    .split("\n")
    .filter((line) => line)
    .map((line) => JSON.parse(line));
}

function lastLine(out) {
  return out.trim().split("\n").at(-1).trim();
}

test("replies, edits, reactions, receipts, deletion and timers with someone on the command line", async () => {
  const bob = join(mkdtempSync(join(tmpdir(), "missive-bob-")), "home");
  cli(bob, "register", "--server", server.url, "bob@talk.test");
  // Its CSP bypassed: axe-core is injected as a script.
  const alice = await openWebApp(browser, server.url, { bypassCSP: true });
  const page = alice.page;
  await registerInApp(page, "alice@talk.test");
  await (await newConversation(page, "bob@talk.test", "Budget")).waitFor({ state: "detached" });
  await say(page, "first draft");
  await article(page, "first draft").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });

  const draft = synced(bob).find((m) => m.text === "first draft");
  assert.ok(draft, "bob received the draft");
  const conversation = draft.conversation;
  const looks = lastLine(cli(bob, "send", conversation, "Looks good"));
  // Bob's message (Alice's reply will quote it: her article holds the same words).
  const bobs = page.getByRole("article", { name: /^bob@talk\.test,/ }).filter({ hasText: "Looks good" });
  await bobs.waitFor({ timeout: 30_000 });

  // A reply from the app names the message it answers, and quotes it.
  await bobs.hover();
  await bobs.getByRole("button", { name: "Reply", exact: true }).click();
  await page.getByRole("status").filter({ hasText: "Replying to bob@talk.test: Looks good" }).waitFor();
  await say(page, "Thanks!");
  const thanks = article(page, "Thanks!");
  await thanks.getByLabel("In reply to").filter({ hasText: "bob@talk.test: Looks good" }).waitFor();
  await thanks.filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  const reply = synced(bob).find((m) => m.text === "Thanks!");
  assert.equal(reply.reply_to, looks);

  // An edit from the app: "edited" on both sides.
  const mine = article(page, "first draft");
  await mine.hover();
  await mine.getByRole("button", { name: "Edit", exact: true }).click();
  await page.getByRole("textbox", { name: "Message" }).fill("final draft");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  const edited = article(page, "final draft");
  await edited.filter({ hasText: "edited" }).waitFor();
  const change = synced(bob).find((m) => m.id === draft.id);
  assert.equal(change.text, "final draft");
  assert.equal(change.edited, true);

  // Bob reacts on the command line; Alice sees it, and reacts from the app.
  cli(bob, "react", conversation, draft.id, "👍");
  await edited.getByRole("button", { name: "👍 1: bob@talk.test" }).waitFor({ timeout: 30_000 });
  await bobs.hover();
  await bobs.getByRole("button", { name: "React", exact: true }).click();
  await bobs.getByRole("button", { name: "React with 🎉" }).click();
  await bobs.getByRole("button", { name: "🎉 1: alice@talk.test" }).waitFor();
  const reacted = synced(bob).find((m) => m.id === looks);
  assert.deepEqual(reacted.reactions, { "🎉": ["alice@talk.test"] });

  // Bob reads: the receipt comes back to Alice.
  cli(bob, "read", conversation);
  await edited.getByText("Read by 1 of 1").waitFor({ timeout: 30_000 });
  await screenshot(page, "conversation-features");
  assert.deepEqual(await accessibilityViolations(page), []);

  // Search among this browser's messages: accents and case ignored, the result opens its
  // conversation.
  const search = page.getByRole("searchbox", { name: "Search messages" });
  await search.fill("FINAL dra");
  const results = page.getByRole("region", { name: "Search results" });
  await results.getByRole("button", { name: /Budget.*alice@talk\.test: final draft/ }).click();
  await search.fill("nothing like this");
  await results.getByText("No message matches.").waitFor();
  await search.fill("");
  await results.waitFor({ state: "detached" });

  // Deletion for everyone, confirmed first.
  await thanks.hover();
  await thanks.getByRole("button", { name: "Delete", exact: true }).click();
  await thanks.getByRole("button", { name: "Delete for everyone" }).click();
  await thanks.waitFor({ state: "detached" });
  await article(page, "This message was deleted").waitFor();
  const gone = synced(bob).find((m) => m.id === reply.id);
  assert.equal(gone.deleted, true);
  assert.equal(gone.text, undefined);
  assert.doesNotMatch(cli(bob, "history", conversation), /Thanks!/);

  // The timer, set from the app for everyone.
  await page.getByRole("combobox", { name: "Disappearing messages" }).selectOption("300");
  await article(page, "alice@talk.test set disappearing messages to 5 minutes").waitFor();
  synced(bob);
  assert.equal(JSON.parse(cli(bob, "conversation", conversation, "--json")).disappear, "5m");

  // Set on the command line to a few seconds: a message comes, then goes, on screen too.
  cli(bob, "conversation", conversation, "--disappear", "3s");
  await article(page, "bob@talk.test set disappearing messages to 3 seconds").waitFor({ timeout: 30_000 });
  assert.equal(
    await page.getByRole("combobox", { name: "Disappearing messages" }).inputValue(),
    "3",
  );
  cli(bob, "send", conversation, "gone in a moment");
  const fleeting = article(page, "gone in a moment");
  await fleeting.waitFor({ timeout: 30_000 });
  await fleeting.waitFor({ state: "detached", timeout: 15_000 });
  assert.deepEqual(alice.errors, []);
});

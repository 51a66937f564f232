// Conversations as people expect them, in the web app with someone on the command line:
// replies, edits, reactions, read receipts, deletion for everyone and disappearing messages,
// each seen on the other side; a call started on the command line, in the app's history.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  startServer,
  launchBrowser,
  openWebApp,
  recordNotifications,
  cli,
  synced,
  screenshot,
  accessibilityViolations,
  registerInApp,
  newConversation,
  say,
  article,
  terminalUser,
} from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer(
    "talk.test",
    `
[[labels]]
name = "Diffusion restreinte"
colour = "#b3261e"
level = 2
max_disappear = 604800
no_forward = true
domains = ["talk.test"]
`,
  );
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

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

  // A mention is highlighted, and named in the command line's JSON.
  await say(page, "@bob@talk.test can you check?");
  await article(page, "can you check?").locator("mark.mention").filter({ hasText: "@bob@talk.test" }).waitFor();
  const mention = synced(bob).find((m) => m.text === "@bob@talk.test can you check?");
  assert.deepEqual(mention.mentions, ["bob@talk.test"]);

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

test("a sensitivity label: chosen in the app, its rules on every screen and on the command line", async () => {
  const bob = join(mkdtempSync(join(tmpdir(), "missive-bob-")), "home");
  cli(bob, "register", "--server", server.url, "bob2@talk.test");
  const carol = await openWebApp(browser, server.url, { bypassCSP: true });
  const page = carol.page;
  await registerInApp(page, "carol@talk.test");
  await (await newConversation(page, "bob2@talk.test", "Crise")).waitFor({ state: "detached" });
  await say(page, "ordinary words");
  await article(page, "ordinary words").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  await (await newConversation(page, "bob2@talk.test", "Cellule")).waitFor({ state: "detached" });

  // Labelled from the app: the rules come with it (a week at most, in force at once).
  await page.getByRole("combobox", { name: "Sensitivity label" }).selectOption("Diffusion restreinte");
  await article(page, "carol@talk.test labelled the conversation Diffusion restreinte").waitFor();
  const timer = page.getByRole("combobox", { name: "Disappearing messages" });
  await page.waitForFunction(
    () => document.querySelector('select[aria-label="Disappearing messages"]')?.value === "604800",
  );
  assert.equal(await timer.locator('option[value="0"]').isDisabled(), true, "off is not allowed");
  assert.equal(await timer.locator('option[value="2419200"]').isDisabled(), true, "nor 4 weeks");
  await page.getByRole("button", { name: /Cellule.*Diffusion restreinte/ }).waitFor();

  // Bob's client learned the label from the conversation: its rules hold there too.
  const events = synced(bob);
  const labelled = events.find((e) => e.event === "settings" && e.label === "Diffusion restreinte");
  assert.ok(labelled, JSON.stringify(events));
  assert.throws(
    () => cli(bob, "conversation", labelled.conversation, "--disappear", "off"),
    /messages must disappear within 1w at most/,
  );
  cli(bob, "send", labelled.conversation, "restricted words");
  const restricted = article(page, "restricted words");
  await restricted.waitFor({ timeout: 30_000 });
  assert.match(await restricted.innerText(), /Diffusion restreinte/);
  // Nothing leaves it: no way to forward from here.
  await restricted.hover();
  assert.equal(await restricted.getByRole("button", { name: "Forward", exact: true }).count(), 0);

  // Into it, a message may come: from the unlabelled conversation, marked forwarded.
  await page.getByRole("button", { name: /^Crise/ }).click();
  const ordinary = article(page, "ordinary words");
  await ordinary.hover();
  await ordinary.getByRole("button", { name: "Forward", exact: true }).click();
  await ordinary.getByRole("combobox", { name: "Forward to" }).selectOption({ label: "Cellule" });
  await ordinary.getByRole("button", { name: "Send there" }).click();
  await page.getByRole("button", { name: /^Cellule/ }).click();
  await article(page, "ordinary words").filter({ hasText: "forwarded" }).waitFor();
  const got = synced(bob).find((m) => m.text === "ordinary words" && m.forwarded);
  assert.equal(got?.label, "Diffusion restreinte");
  assert.deepEqual(await accessibilityViolations(page), []);
  await screenshot(page, "labelled-conversation");
  assert.deepEqual(carol.errors, []);
});

test("two people in the app: one sees the other typing, and can turn read receipts off", async () => {
  const dave = await openWebApp(browser, server.url);
  await registerInApp(dave.page, "dave@talk.test");
  const erin = await openWebApp(browser, server.url);
  await registerInApp(erin.page, "erin@talk.test");
  await (await newConversation(dave.page, "erin@talk.test", "Pair")).waitFor({ state: "detached" });
  await say(dave.page, "hello Erin");
  await erin.page.getByRole("button", { name: /^Pair/ }).click({ timeout: 30_000 });
  await article(erin.page, "hello Erin").waitFor();

  // Typing shows on the other side, for a few seconds.
  await dave.page.getByRole("textbox", { name: "Message" }).pressSequentially("I am writ");
  await erin.page.getByRole("status").filter({ hasText: "dave@talk.test is typing…" }).waitFor({ timeout: 15_000 });
  await erin.page
    .getByRole("status")
    .filter({ hasText: "dave@talk.test is typing…" })
    .waitFor({ state: "detached", timeout: 15_000 });

  // Read receipts off in Erin's settings: Dave's messages stay "Delivered", never "Read".
  await erin.page.getByRole("button", { name: "Devices" }).click();
  const receipts = erin.page.getByRole("checkbox", { name: "Send read receipts" });
  await receipts.waitFor();
  assert.equal(await receipts.isChecked(), true, "on by default");
  await receipts.uncheck();
  await erin.page.waitForFunction(
    () => !document.querySelector('input[type="checkbox"]:disabled'),
  );
  await erin.page.keyboard.press("Escape");
  await say(dave.page, "read this quietly");
  const sent = article(dave.page, "read this quietly");
  await article(erin.page, "read this quietly").waitFor({ timeout: 30_000 });
  await sent.getByText("Delivered to 1 of 1").waitFor({ timeout: 30_000 });
  await dave.page.waitForTimeout(1500);
  assert.equal(await sent.getByText("Read by 1 of 1").count(), 0);
  assert.deepEqual(dave.errors, []);
  assert.deepEqual(erin.errors, []);
});

test("a call started on the command line rings in the app, and shows as missed when nobody answered", async () => {
  const tom = terminalUser(server, "tom@talk.test");
  // The app in the background, notifications allowed and recorded: the ring raises one.
  const inBackground = () => Object.defineProperty(document, "hidden", { get: () => true });
  const bea = await openWebApp(browser, server.url, {
    bypassCSP: true,
    init: [recordNotifications, inBackground],
  });
  await registerInApp(bea.page, "bea@talk.test");
  await (await newConversation(bea.page, "tom@talk.test")).waitFor({ state: "detached" });
  await say(bea.page, "call me");
  await article(bea.page, "call me").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  const conversation = JSON.parse(cli(tom, "conversations", "--json").trim().split("\n")[0]).id;
  // Tom calls for two seconds; nobody joins. The app shows the ring (the encrypted call
  // message), then the call as missed, with its length.
  cli(tom, "call", "start", conversation, "--duration", "2");
  await article(bea.page, "tom@talk.test started a call").waitFor();
  assert.deepEqual(await bea.page.evaluate(() => window.shown), [["Incoming call", "tom@talk.test is calling"]]);
  const missed = article(bea.page, /Missed call \(\d s\)/);
  await missed.waitFor();
  assert.match(await missed.getAttribute("class"), /missed-call/);
  assert.deepEqual(await accessibilityViolations(bea.page), []);
  await screenshot(bea.page, "missed-call");
  assert.deepEqual(bea.errors, []);
});

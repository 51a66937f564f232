// The web app as people use it: its screens driven by role and accessible name (the UI
// contract of issue 14) in headless Chromium, at a computer's size and a phone's, against a
// real server and the `missive` command.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  launchBrowser,
  openWebApp,
  recordNotifications,
  cli,
  cliSync,
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
  server = await startServer("app.test");
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const terminal = (name) => terminalUser(server, `${name}@app.test`);

test("a conversation started in the app with someone on the command line", async () => {
  const bob = terminal("bob");
  const alice = await openWebApp(browser, server.url);
  await alice.page.getByRole("button", { name: "Register" }).waitFor();
  await screenshot(alice.page, "register-computer");
  assert.equal(await alice.page.getByRole("textbox", { name: "Server" }).inputValue(), server.url);
  await registerInApp(alice.page, "alice@app.test");

  await (await newConversation(alice.page, "bob@app.test", "Budget 2027")).waitFor({ state: "detached" });
  await say(alice.page, "Hello Bob, the draft is ready");
  const mine = article(alice.page, "Hello Bob, the draft is ready");
  await mine.waitFor();
  assert.match(await mine.innerText(), /alice@app\.test/);
  await mine.filter({ hasText: "Sending…" }).waitFor({ state: "detached" });

  assert.deepEqual(cliSync(bob), [["alice@app.test", "Hello Bob, the draft is ready"]]);
  const conversation = JSON.parse(cli(bob, "conversations", "--json").trim().split("\n")[0]).id;
  cli(bob, "send", conversation, "Thanks, reading it now");

  // Pushed live into the open conversation.
  const answer = article(alice.page, "Thanks, reading it now");
  await answer.waitFor({ timeout: 30_000 });
  assert.match(await answer.innerText(), /bob@app\.test/);
  await screenshot(alice.page, "conversation-computer");

  // A reload: the account, the conversation and its history are there.
  await alice.page.reload();
  await alice.page.getByRole("button", { name: /Budget 2027/ }).click();
  await article(alice.page, "Thanks, reading it now").waitFor();
  await article(alice.page, "Hello Bob, the draft is ready").waitFor();

  // A second tab of the same profile does not open the account twice.
  const second = await alice.context.newPage();
  await second.goto(server.url);
  await second.getByText("Missive is open in another tab.").waitFor();
  await second.getByRole("button", { name: "Use here" }).click();
  await second.getByRole("button", { name: /Budget 2027/ }).waitFor();
  await alice.page.getByText("Missive is now open in another tab").waitFor();
  await second.getByRole("button", { name: /Budget 2027/ }).click();
  await say(second, "Sent from the second tab");
  await article(second, "Sent from the second tab").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  assert.deepEqual(cliSync(bob), [["alice@app.test", "Sent from the second tab"]]);
  assert.deepEqual(alice.errors, []);
});

test("on a phone: a one-to-one conversation, with errors in words", async () => {
  const dave = terminal("dave");
  const carol = await openWebApp(browser, server.url, { phone: true });
  await carol.page.getByRole("textbox", { name: "Address" }).fill("not an address");
  await carol.page.getByRole("button", { name: "Register" }).click();
  await carol.page.getByRole("alert").waitFor();
  assert.match(await carol.page.getByRole("alert").innerText(), /address/i);
  await screenshot(carol.page, "register-error-phone");
  await registerInApp(carol.page, "carol@app.test");

  await newConversation(carol.page, "nobody@app.test");
  // The dialog stays with the reason; then a real member.
  await carol.page.getByRole("alert").filter({ hasText: "no user nobody@app.test" }).waitFor();
  await carol.page.getByRole("button", { name: "Cancel" }).click();
  await (await newConversation(carol.page, "dave@app.test")).waitFor({ state: "detached" });
  await say(carol.page, "Are you free at noon?");
  await article(carol.page, "Are you free at noon?").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  await screenshot(carol.page, "conversation-phone");
  assert.deepEqual(cliSync(dave), [["carol@app.test", "Are you free at noon?"]]);

  // Back to the list on a phone: the one-to-one conversation is named after Dave.
  await carol.page.getByRole("button", { name: "Back to conversations" }).click();
  await carol.page.getByRole("button", { name: /dave@app\.test/ }).waitFor();
  await screenshot(carol.page, "conversations-phone");
  assert.deepEqual(carol.errors, []);
});

test("every screen passes axe-core with no serious or critical violation", async () => {
  terminal("erin");
  for (const phone of [false, true]) {
    // Its own profile, whose CSP is bypassed so that axe can be injected; the flows above run
    // under the real CSP.
    const { page, errors } = await openWebApp(browser, server.url, { phone, bypassCSP: true });
    const size = phone ? "phone" : "computer";
    await page.getByRole("button", { name: "Register" }).waitFor();
    assert.deepEqual(await accessibilityViolations(page), [], `register, ${size}`);
    await registerInApp(page, `frank${phone ? "p" : "c"}@app.test`, async () => {
      assert.deepEqual(await accessibilityViolations(page), [], `recovery key, ${size}`);
    });
    assert.deepEqual(await accessibilityViolations(page), [], `conversations, ${size}`);
    await page.getByRole("button", { name: "New conversation" }).click();
    await page.getByRole("dialog", { name: "New conversation" }).waitFor();
    assert.deepEqual(await accessibilityViolations(page), [], `new conversation, ${size}`);
    await page.getByRole("textbox", { name: "Members" }).fill("erin@app.test");
    await page.getByRole("button", { name: "Create" }).click();
    await say(page, "Accessible?");
    await article(page, "Accessible?").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
    assert.deepEqual(await accessibilityViolations(page), [], `conversation, ${size}`);
    assert.deepEqual(errors, []);
  }
});

test("in French from the browser's language, in English at a choice that is remembered", async () => {
  const { page, errors } = await openWebApp(browser, server.url, { locale: "fr-FR", bypassCSP: true });
  await page.getByRole("button", { name: "S'inscrire" }).waitFor();
  assert.equal(await page.getAttribute("html", "lang"), "fr");
  await page.getByRole("textbox", { name: "Adresse" }).fill("zoe@app.test");
  assert.equal(await page.getByRole("textbox", { name: "Serveur" }).inputValue(), server.url);
  await page.getByRole("button", { name: "S'inscrire" }).click();
  await page.getByRole("heading", { name: "Votre clé de récupération" }).waitFor();
  await page.getByRole("checkbox", { name: "J'ai noté ma clé de récupération" }).check();
  await page.getByRole("button", { name: "Continuer" }).click();
  await page.getByRole("button", { name: "Nouvelle conversation" }).waitFor();
  await page.getByRole("button", { name: "Appareils" }).click();
  await page.getByRole("dialog", { name: "Appareils" }).getByText("cet appareil").waitFor();
  assert.deepEqual(await accessibilityViolations(page), []);
  await screenshot(page, "devices-french");
  await page.getByRole("button", { name: "Fermer" }).click();

  await page.getByRole("combobox", { name: "Langue" }).selectOption("en");
  await page.getByRole("button", { name: "New conversation" }).waitFor();
  assert.equal(await page.getAttribute("html", "lang"), "en");
  await page.reload();
  await page.getByRole("button", { name: "New conversation" }).waitFor();
  assert.deepEqual(errors, []);
});

test("a message for a conversation not on screen raises a system notification", async () => {
  const nina = terminal("nina");
  const { page, errors } = await openWebApp(browser, server.url, { init: recordNotifications });
  await registerInApp(page, "omar@app.test");
  cli(nina, "dm", "omar@app.test", "ping");
  await page.waitForFunction(() => window.shown.length > 0);
  assert.deepEqual(await page.evaluate(() => window.shown), [["nina@app.test", "ping"]]);
  // Reading that conversation, the next one shows on screen, not as a notification.
  await page.getByRole("button", { name: /nina@app\.test/ }).click();
  cli(nina, "dm", "omar@app.test", "pong");
  await article(page, "pong").waitFor();
  assert.equal(await page.evaluate(() => window.shown.length), 1);
  assert.deepEqual(errors, []);
});

test("every device lost: the recovery key brings the account back in a new browser", async () => {
  const lena = terminal("lena");
  const first = await openWebApp(browser, server.url);
  await first.page.getByRole("button", { name: "Register" }).waitFor();
  const key = await registerInApp(first.page, "mona@app.test", () => screenshot(first.page, "recovery-key"));
  assert.match(key, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){7}$/);
  // The history backup, switched on in "Devices".
  await first.page.getByRole("button", { name: "Devices" }).click();
  const backup = first.page.getByRole("checkbox", { name: "Back up message history with the recovery key" });
  await backup.check();
  // The engine answers calls in order: the switch is on before anything below is sent.
  await first.page.getByRole("button", { name: "Close" }).click();
  await (await newConversation(first.page, "lena@app.test", "Recovery drill")).waitFor({ state: "detached" });
  await say(first.page, "before the loss");
  await article(first.page, "before the loss").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  assert.deepEqual(cliSync(lena), [["mona@app.test", "before the loss"]]);
  const drill = JSON.parse(cli(lena, "conversations", "--json").trim().split("\n")[0]).id;
  cli(lena, "send", drill, "noted");
  // Read in the app: its sync backs both messages up.
  await article(first.page, "noted").waitFor();
  assert.deepEqual(first.errors, []);
  await first.context.close();

  // A new browser: nothing of the account in it.
  const { page, errors } = await openWebApp(browser, server.url, { phone: true });
  await page.getByRole("button", { name: "Recover an account (every device lost)" }).click();
  await page.getByRole("textbox", { name: "Address" }).fill("mona@app.test");
  await page.getByRole("textbox", { name: "Recovery key" }).fill("0000 0000 0000 0000 0000 0000 0000 0000");
  await page.getByRole("button", { name: "Recover account" }).click();
  await page.getByRole("alert").filter({ hasText: "no recovery backup" }).waitFor();
  await page.getByRole("textbox", { name: "Recovery key" }).fill(key.toLowerCase().replaceAll("-", " "));
  await page.getByRole("button", { name: "Recover account" }).click();
  await page.getByRole("button", { name: /Recovery drill/ }).click();
  // The past, from the history backup.
  await article(page, "before the loss").waitFor();
  await article(page, "noted").waitFor();
  await say(page, "after the loss");
  await article(page, "after the loss").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  assert.deepEqual(cliSync(lena), [["mona@app.test", "after the loss"]]);
  cli(lena, "send", drill, "welcome back");
  await article(page, "welcome back").waitFor();
  assert.equal(cli(lena, "alerts"), "", "lena saw a new device under the key she pinned");
  assert.deepEqual(errors, []);
});

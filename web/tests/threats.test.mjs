// The hostile server of ../shared/threats.md against the web app: the server itself forges a
// device, withholds a message and swaps an identity key (crates/server/examples/hostile.rs
// writes into its store), and the app must refuse and say so in words, on screen. Real
// server, real `missive` command, headless Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  launchBrowser,
  openWebApp,
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

const DOMAIN = "threats.test";
let server;
let browser;

before(async () => {
  server = await startServer(DOMAIN);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const terminal = (name) => terminalUser(server, `${name}@${DOMAIN}`);

function sent(page, text) {
  return article(page, text).filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
}

test("a withheld message and a forged device end as alerts in words, and nothing leaks", async () => {
  const bob = terminal("bob");
  const { context, page, errors } = await openWebApp(browser, server.url, { bypassCSP: true });
  await registerInApp(page, `alice@${DOMAIN}`);
  await (await newConversation(page, `bob@${DOMAIN}`)).waitFor({ state: "detached" });
  await say(page, "hello");
  await sent(page, "hello");
  assert.deepEqual(cliSync(bob), [[`alice@${DOMAIN}`, "hello"]]);
  cli(bob, "dm", `alice@${DOMAIN}`, "one");
  await article(page, "one").waitFor();

  // While alice's app is closed, bob writes twice and the server withholds the first (what
  // alice's app holds of bob's device tells it that "three" follows a message it never got).
  await page.close();
  cli(bob, "dm", `alice@${DOMAIN}`, "two");
  cli(bob, "dm", `alice@${DOMAIN}`, "three");
  server.hostile("withhold-message");
  const reopened = await context.newPage();
  reopened.on("pageerror", (e) => errors.push(e));
  await reopened.goto(server.url);
  await reopened.getByRole("button", { name: new RegExp(`bob@${DOMAIN}`) }).click();
  await article(reopened, "three").waitFor();
  const alerts = reopened.getByRole("alert", { name: "Security alerts" });
  await alerts.getByText("The server held back messages: some were never delivered to this device.").waitFor();
  assert.equal(await article(reopened, "two").count(), 0);

  // The server adds a device of its own making to bob's account. A new conversation with bob
  // would take it in: the app refuses to create one, and says why.
  server.hostile("forge-device", `bob@${DOMAIN}`);
  const create = await newConversation(reopened, `bob@${DOMAIN}`, "Plans");
  await create.getByRole("alert").waitFor();
  await alerts.getByText(/A device that its owner never approved was offered by the server/).waitFor();
  assert.deepEqual(await accessibilityViolations(reopened), []);
  await screenshot(reopened, "security-alerts");
  await create.getByRole("button", { name: "Cancel" }).click();
  // The conversation alice has with bob is untouched (only bob's own devices could add one
  // of his to it): what she writes reaches bob, and no device of the server's making.
  await say(reopened, "for bob's eyes only");
  await sent(reopened, "for bob's eyes only");
  assert.deepEqual(cliSync(bob), [[`alice@${DOMAIN}`, "for bob's eyes only"]]);
  assert.equal(await reopened.getByRole("button", { name: /Plans/ }).count(), 0);
  assert.deepEqual(errors, []);
});

test("a changed identity key blocks sending until its new safety number is accepted", async () => {
  const dan = terminal("dan");
  const { page, errors } = await openWebApp(browser, server.url, { phone: true, bypassCSP: true });
  await registerInApp(page, `carol@${DOMAIN}`);
  await (await newConversation(page, `dan@${DOMAIN}`)).waitFor({ state: "detached" });
  await say(page, "hi dan");
  await sent(page, "hi dan");
  assert.deepEqual(cliSync(dan), [[`carol@${DOMAIN}`, "hi dan"]]);
  await page.getByRole("button", { name: "Safety number" }).click();
  let dialog = page.getByRole("dialog", { name: "Safety number" });
  const digits = () => dialog.getByLabel("Safety number digits", { exact: true }).innerText();
  const before = await digits();
  await dialog.getByRole("button", { name: "Mark as verified" }).click();
  await dialog.getByText("Verified").waitFor();
  await dialog.getByRole("button", { name: "Close" }).click();

  // The server announces another key for dan ("a new phone"), logged where dan could see
  // it. Carol's app notices at its next look at dan's key (here, the safety number): it shows
  // the new key's number, and until she accepts it, nothing goes to dan.
  server.hostile("swap-identity", `dan@${DOMAIN}`);
  await page.getByRole("button", { name: "Safety number" }).click();
  dialog = page.getByRole("dialog", { name: "Safety number" });
  await dialog.getByText("this is the safety number of the new key", { exact: false }).waitFor();
  const after = await digits();
  assert.notEqual(after, before);
  assert.match(after.split(/\s+/).join(" "), /^(\d{5} ){11}\d{5}$/);
  assert.deepEqual(await accessibilityViolations(page), []);
  await screenshot(page, "identity-changed-number-phone");
  await dialog.getByRole("button", { name: "Close" }).click();
  const warning = page.locator(".identity-changed");
  await warning.getByText(`The identity key of dan@${DOMAIN} changed.`, { exact: false }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Send" }).isDisabled(), true, "sending is blocked");
  assert.deepEqual(await accessibilityViolations(page), []);
  await screenshot(page, "identity-changed-phone");

  // Accepting the new key lifts the block; dan is no longer verified.
  await warning.getByRole("button", { name: `Compare safety numbers with dan@${DOMAIN}` }).click();
  dialog = page.getByRole("dialog", { name: "Safety number" });
  await dialog.getByText("this is the safety number of the new key", { exact: false }).waitFor();
  await dialog.getByRole("button", { name: "Accept the new key" }).click();
  await dialog.getByRole("button", { name: "Mark as verified" }).waitFor();
  assert.equal(await digits(), after);
  await dialog.getByRole("button", { name: "Close" }).click();
  await warning.waitFor({ state: "detached" });
  assert.equal(await page.getByRole("button", { name: "Send" }).isDisabled(), false);

  // Trusting the server's key does not let it read: dan's real device is certified by his
  // real key, so the app refuses to send to it, and nothing reaches dan.
  await say(page, "still there?");
  await article(page, "still there?").getByText(/Not sent/).waitFor({ timeout: 30_000 });
  await page
    .getByRole("alert", { name: "Security alerts" })
    .getByText(/A device that its owner never approved/)
    .waitFor({ timeout: 30_000 });
  // Nothing reached dan, and his own device sees a key logged in his name that is not his.
  assert.throws(
    () => cli(dan, "sync", "--json"),
    (e) => e.status === 3 && e.stdout.trim() === "" && /own_key_logged/.test(e.stderr),
  );
  assert.deepEqual(errors, []);
});

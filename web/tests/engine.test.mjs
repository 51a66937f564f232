// The client engine in a real browser: accounts registered in headless Chromium talk to a real
// server and to the command-line client, through the same flows the CLI runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchBrowser, openApp, cli } from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer("web.test");
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Registers `address` in the page's engine (kept as `window.engine`); returns its device id. */
async function register(page, address) {
  return page.evaluate(async (address) => {
    window.engine = await window.missive.Engine.register(location.origin, address);
    return window.engine.deviceId;
  }, address);
}

/** The error an engine call throws in the page, as { code, message }. */
async function errorOf(page, body, arg) {
  return page.evaluate(
    async ([body, arg]) => {
      try {
        await new Function("arg", `return (${body})(arg)`)(arg);
        return null;
      } catch (e) {
        return { code: e.code, message: e.message };
      }
    },
    [body, arg],
  );
}

test("two browser accounts and a terminal one share a conversation", async () => {
  const carolHome = join(mkdtempSync(join(tmpdir(), "missive-carol-")), "home");
  cli(carolHome, "register", "--server", server.url, "carol@web.test");

  const alice = await openApp(browser, server.url);
  const bob = await openApp(browser, server.url);
  const aliceDevice = await register(alice.page, "alice@web.test");
  assert.match(aliceDevice, /^[0-9a-f]{32}$/);
  await register(bob.page, "Bob@Web.Test");
  assert.equal(await bob.page.evaluate(() => window.engine.address), "bob@web.test");

  // Bob listens on the push channel; what arrives is collected in the page.
  await bob.page.evaluate(() => {
    window.received = [];
    window.listening = window.engine.listen((outcomes) => window.received.push(...outcomes));
  });

  const conversation = await alice.page.evaluate(async () => {
    const id = await window.engine.createConversation("Budget 2027", [
      "bob@web.test",
      "carol@web.test",
    ]);
    await window.engine.send(id, "Draft is ready for review");
    return id;
  });
  assert.match(conversation, /^[0-9a-f]{32}$/);

  // Pushed to Bob's browser: he joins and reads, without asking.
  await bob.page.waitForFunction(
    () => window.received.some((o) => o.type === "message" && o.message.text === "Draft is ready for review"),
    null,
    { timeout: 30_000 },
  );
  const bobView = await bob.page.evaluate(async (id) => ({
    outcomes: window.received.map((o) => o.type),
    conversations: await window.engine.conversations(),
  }), conversation);
  assert.ok(bobView.outcomes.includes("joined"), `outcomes: ${bobView.outcomes}`);
  const shared = bobView.conversations.find((c) => c.id === conversation);
  assert.equal(shared?.name, "Budget 2027");

  // Bob answers from his browser; Alice syncs and reads it.
  await bob.page.evaluate((id) => window.engine.send(id, "Two remarks on page 3"), conversation);
  const aliceSees = await alice.page.evaluate(async () => {
    const outcomes = await window.engine.sync();
    return outcomes.filter((o) => o.type === "message").map((o) => [o.message.sender, o.message.text]);
  });
  assert.deepEqual(aliceSees, [["bob@web.test", "Two remarks on page 3"]]);

  // Carol, in a terminal, reads both browser messages and answers.
  const carolSync = cli(carolHome, "sync", "--json")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  assert.deepEqual(
    carolSync.map((m) => [m.sender, m.text]),
    [
      ["alice@web.test", "Draft is ready for review"],
      ["bob@web.test", "Two remarks on page 3"],
    ],
  );
  cli(carolHome, "send", conversation.slice(0, 8), "Agreed, sending figures");

  // Both browsers have Carol's answer: Bob by push, Alice by sync.
  await bob.page.waitForFunction(
    () => window.received.some((o) => o.type === "message" && o.message.sender === "carol@web.test"),
    null,
    { timeout: 30_000 },
  );
  const aliceHistory = await alice.page.evaluate(async (id) => {
    await window.engine.sync();
    return (await window.engine.messages(id)).map((m) => [m.sender, m.text]);
  }, conversation);
  assert.deepEqual(aliceHistory, [
    ["alice@web.test", "Draft is ready for review"],
    ["bob@web.test", "Two remarks on page 3"],
    ["carol@web.test", "Agreed, sending figures"],
  ]);

  // A one-to-one conversation started from the browser reaches the terminal.
  await alice.page.evaluate(() => window.engine.dm("carol@web.test", "Lunch on Friday?"));
  const carolDm = cli(carolHome, "sync", "--json").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(carolDm.map((m) => [m.sender, m.text]), [["alice@web.test", "Lunch on Friday?"]]);

  await bob.page.evaluate(() => window.engine.stop());
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test("errors reach the page with stable codes, and nothing is lost", async () => {
  const app = await openApp(browser, server.url);
  const badAddress = await errorOf(
    app.page,
    "(origin) => window.missive.Engine.register(origin, 'not an address')",
    server.url,
  );
  assert.equal(badAddress?.code, "usage");

  await register(app.page, "dave@web.test");
  const unknown = await errorOf(
    app.page,
    "() => window.engine.createConversation('x', ['nobody@web.test'])",
  );
  assert.equal(unknown?.code, "unknown_user", unknown?.message);
  assert.match(unknown?.message, /no user nobody@web\.test/);

  const empty = await errorOf(app.page, "() => window.engine.dm('carol@web.test', '   ')");
  assert.equal(empty?.code, "usage");
  // The refused calls left the engine usable.
  const conversations = await app.page.evaluate(() => window.engine.conversations());
  assert.deepEqual(conversations, []);

  const unreachable = await errorOf(
    app.page,
    "() => window.missive.Engine.register('http://127.0.0.1:9', 'erin@web.test')",
  );
  assert.equal(unreachable?.code, "network");
});

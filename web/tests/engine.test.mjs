// The client engine in a real browser: accounts registered in headless Chromium talk to a real
// server and to the command-line client, through the same flows the CLI runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchBrowser, openApp, cli, cliSync } from "./harness.mjs";

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

/** Registers `address` in the page's engine (kept as `window.engine`), in the profile's
 *  storage; returns its device id. */
async function register(page, address) {
  return page.evaluate(async (address) => {
    const storage = await window.missive.openStorage();
    window.engine = await window.missive.Engine.register(storage, location.origin, address);
    return window.engine.deviceId;
  }, address);
}

/** Opens the account the page's profile holds (as `window.engine`); returns its address or
 *  null when there is none. */
async function reopen(page) {
  return page.evaluate(async () => {
    window.engine = await window.missive.Engine.open(await window.missive.openStorage());
    return window.engine?.address ?? null;
  });
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
    "async (origin) => window.missive.Engine.register(await window.missive.openStorage(), origin, 'not an address')",
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
    "async () => window.missive.Engine.register(await window.missive.openStorage('other'), 'http://127.0.0.1:9', 'erin@web.test')",
  );
  assert.equal(unreachable?.code, "network");
});

test("the account survives a reload: a new engine over the same browser storage", async () => {
  const graceHome = join(mkdtempSync(join(tmpdir(), "missive-grace-")), "home");
  cli(graceHome, "register", "--server", server.url, "grace@web.test");
  const app = await openApp(browser, server.url);
  assert.equal(await reopen(app.page), null, "a new profile holds no account");
  await register(app.page, "frank@web.test");
  const conversation = await app.page.evaluate(async () => {
    const id = await window.engine.createConversation("Reload", ["grace@web.test"]);
    await window.engine.send(id, "before reload");
    return id;
  });
  assert.deepEqual(cliSync(graceHome), [["frank@web.test", "before reload"]]);
  cli(graceHome, "send", conversation, "sent while frank reloads");

  await app.page.reload();
  await app.page.waitForFunction(() => document.documentElement.dataset.engine === "ready");
  assert.equal(await reopen(app.page), "frank@web.test");
  const after = await app.page.evaluate(async (id) => {
    const before = (await window.engine.messages(id)).map((m) => m.text);
    const synced = (await window.engine.sync())
      .filter((o) => o.type === "message")
      .map((o) => o.message.text);
    await window.engine.send(id, "after reload");
    const names = (await window.engine.conversations()).map((c) => c.name);
    return { before, synced, names };
  }, conversation);
  assert.deepEqual(after, {
    before: ["before reload"],
    synced: ["sent while frank reloads"],
    names: ["Reload"],
  });
  assert.deepEqual(cliSync(graceHome), [["frank@web.test", "after reload"]]);

  // The profile holds Frank's account: registering another one there is refused.
  const again = await errorOf(
    app.page,
    "async (origin) => window.missive.Engine.register(await window.missive.openStorage(), origin, 'other@web.test')",
    server.url,
  );
  assert.equal(again?.code, "usage");
  assert.deepEqual(app.errors, []);
});

test("a page closed while its commit was on the wire recovers on the next load", async () => {
  const heidiHome = join(mkdtempSync(join(tmpdir(), "missive-heidi-")), "home");
  cli(heidiHome, "register", "--server", server.url, "heidi@web.test");
  const first = await openApp(browser, server.url);
  await register(first.page, "ivan@web.test");

  // The commit adding Heidi reaches the server, which applies it; its answer never reaches
  // the page, which is closed at that moment.
  let delivered;
  const commitApplied = new Promise((resolve) => (delivered = resolve));
  await first.page.route("**/v1/groups/*/commits", async (route) => {
    const response = await route.fetch();
    delivered(response.status());
  });
  const hanging = first.page
    .evaluate(() => window.engine.createConversation("Crash", ["heidi@web.test"]))
    .catch(() => "the page closed");
  assert.equal(await commitApplied, 200);
  await first.page.close();
  assert.equal(await hanging, "the page closed");

  // The same profile, a new page: the staged commit was saved before it left.
  const page = await first.context.newPage();
  await page.goto(new URL("engine.html", server.url).href);
  await page.waitForFunction(() => document.documentElement.dataset.engine === "ready");
  assert.equal(await reopen(page), "ivan@web.test");
  const recovered = await page.evaluate(async () => {
    const outcomes = await window.engine.sync();
    const [conversation] = await window.engine.conversations();
    await window.engine.send(conversation.id, "after the crash");
    return {
      alerts: outcomes.filter((o) => o.type === "alert"),
      conversation: conversation.id,
    };
  });
  assert.deepEqual(recovered.alerts, []);
  // Heidi joined through the commit that was on the wire, and reads what follows.
  assert.deepEqual(cliSync(heidiHome), [["ivan@web.test", "after the crash"]]);
  cli(heidiHome, "send", recovered.conversation, "no message lost");
  const read = await page.evaluate(async () =>
    (await window.engine.sync()).filter((o) => o.type === "message").map((o) => o.message.text),
  );
  assert.deepEqual(read, ["no message lost"]);
});

// Files in the web app with someone on the command line: each way, byte for byte, picked,
// dropped, previewed, after a reload, at a computer's and a phone's size, and under a label
// that keeps files inside the app; and between two browsers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import {
  startServer,
  launchBrowser,
  openWebApp,
  cli,
  synced,
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
  server = await startServer(
    "files.test",
    `
[[labels]]
name = "Consultation"
colour = "#1d4ed8"
level = 1
downloads = "in_app"
`,
  );
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A valid PNG of `size`×`size` pixels (a red square), made here. */
function png(size) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(8 + data.length + 4);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bits per channel
  header[9] = 2; // RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(size * 3, Buffer.from([220, 30, 30]))]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: size }, () => row)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", pixels),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Alice in the app (at `phone` size or not) and Bob on the command line, in a conversation
 *  both have seen. */
async function pair(name, phone) {
  const bob = join(mkdtempSync(join(tmpdir(), "missive-bob-")), "home");
  cli(bob, "register", "--server", server.url, `bob-${name}@files.test`);
  const alice = await openWebApp(browser, server.url, { phone, bypassCSP: true });
  const page = alice.page;
  await registerInApp(page, `alice-${name}@files.test`);
  await (await newConversation(page, `bob-${name}@files.test`)).waitFor({ state: "detached" });
  await say(page, "files follow");
  await article(page, "files follow").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  const hello = synced(bob).find((m) => m.text === "files follow");
  assert.ok(hello, "bob received the first message");
  return { alice, page, bob, conversation: hello.conversation };
}

/** The bytes of the file Bob received in message `id`, downloaded by `missive download`. */
function downloadedByBob(bob, id, name) {
  const inbox = mkdtempSync(join(tmpdir(), "missive-inbox-"));
  cli(bob, "download", id, "--out", inbox);
  return readFileSync(join(inbox, name));
}

/** Waits for the file `name` in the app on `page` and saves it through the browser's
 *  download; returns the bytes saved. */
async function savedFromApp(page, name) {
  const message = article(page, name);
  await message.waitFor({ timeout: 30_000 });
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    message.getByRole("button", { name: `Download ${name}` }).click(),
  ]);
  assert.equal(download.suggestedFilename(), name);
  return readFileSync(await download.path());
}

test("files each way between the app and the command line, picked, dropped and previewed", async () => {
  const { alice, page, bob, conversation } = await pair("desk", false);

  // Picked in the app: 1.5 MiB of random bytes, two pieces of the engine's upload.
  const report = randomBytes(1_500_000 + 12_345);
  await page.getByLabel("Attach file").setInputFiles({
    name: "report.pdf",
    mimeType: "application/pdf",
    buffer: report,
  });
  await article(page, "report.pdf").filter({ hasText: "Sending…" }).waitFor({ state: "detached", timeout: 60_000 });
  const sent = synced(bob).find((m) => m.file?.name === "report.pdf");
  assert.ok(sent, "bob received the file message");
  assert.equal(sent.file.size, report.length);
  assert.ok(downloadedByBob(bob, sent.id, "report.pdf").equals(report), "bob's copy is byte for byte alice's");

  // Dropped on the conversation.
  const dropped = await page.evaluateHandle(() => {
    const transfer = new DataTransfer();
    transfer.items.add(new File(["words dropped in the app"], "dropped.txt", { type: "text/plain" }));
    return transfer;
  });
  const view = page.getByRole("region", { name: `bob-desk@files.test` });
  await view.dispatchEvent("dragover", { dataTransfer: dropped });
  await view.dispatchEvent("drop", { dataTransfer: dropped });
  await article(page, "dropped.txt").filter({ hasText: "Sending…" }).waitFor({ state: "detached", timeout: 30_000 });
  const drop = synced(bob).find((m) => m.file?.name === "dropped.txt");
  assert.ok(drop, "bob received the dropped file");
  assert.equal(downloadedByBob(bob, drop.id, "dropped.txt").toString(), "words dropped in the app");

  // From the command line to the app: saved through the browser's download, byte for byte.
  const dir = mkdtempSync(join(tmpdir(), "missive-files-"));
  const budget = randomBytes(700_000);
  writeFileSync(join(dir, "budget.ods"), budget);
  cli(bob, "send-file", conversation, join(dir, "budget.ods"));
  assert.ok((await savedFromApp(page, "budget.ods")).equals(budget), "alice's copy is byte for byte bob's");

  // An image is shown in the conversation once the engine has checked it.
  writeFileSync(join(dir, "chart.png"), png(48));
  cli(bob, "send-file", conversation, join(dir, "chart.png"));
  const image = article(page, "chart.png").getByRole("img", { name: "chart.png" });
  await image.waitFor({ timeout: 30_000 });
  await page.waitForFunction(
    (alt) => [...document.querySelectorAll("img")].some((i) => i.alt === alt && i.complete && i.naturalWidth === 48),
    "chart.png",
  );
  // A text file is read in the app.
  writeFileSync(join(dir, "notes.txt"), "ordre du jour : budget 2027");
  cli(bob, "send-file", conversation, join(dir, "notes.txt"));
  await article(page, "notes.txt").getByRole("button", { name: "Read" }).click();
  await article(page, "notes.txt").getByText("ordre du jour : budget 2027").waitFor();
  await screenshot(page, "files-desktop");
  assert.deepEqual(await accessibilityViolations(page), []);

  // After a reload the file is still there, and downloads again.
  await page.reload();
  await page.getByRole("button", { name: /bob-desk@files\.test/ }).click();
  assert.ok((await savedFromApp(page, "budget.ods")).equals(budget), "the same bytes after a reload");

  // Under a label that keeps files in the app: shown, never offered for saving.
  await page.getByRole("combobox", { name: "Sensitivity label" }).selectOption("Consultation");
  await page.getByRole("article", { name: /labelled the conversation Consultation/ }).waitFor();
  synced(bob);
  writeFileSync(join(dir, "in-app.png"), png(16));
  cli(bob, "send-file", conversation, join(dir, "in-app.png"));
  const kept = article(page, "in-app.png");
  await kept.getByRole("img", { name: "in-app.png" }).waitFor({ timeout: 30_000 });
  await kept.getByText("Files of this conversation can be viewed in the app only.").waitFor();
  assert.equal(await kept.getByRole("button", { name: /^Download/ }).count(), 0);
  assert.deepEqual(alice.errors.map((e) => e.message), []);
  await alice.context.close();
});

test("files each way at a phone's size", async () => {
  const { alice, page, bob, conversation } = await pair("phone", true);
  const photo = png(64);
  await page.getByLabel("Attach file").setInputFiles({ name: "photo.png", mimeType: "image/png", buffer: photo });
  await article(page, "photo.png").filter({ hasText: "Sending…" }).waitFor({ state: "detached", timeout: 30_000 });
  // Our own image is previewed too (fetched back and checked like any other).
  await article(page, "photo.png").getByRole("img", { name: "photo.png" }).waitFor({ timeout: 30_000 });
  const sent = synced(bob).find((m) => m.file?.name === "photo.png");
  assert.ok(sent && downloadedByBob(bob, sent.id, "photo.png").equals(photo), "bob's copy is alice's");

  const dir = mkdtempSync(join(tmpdir(), "missive-files-"));
  const scan = randomBytes(200_000);
  writeFileSync(join(dir, "scan.pdf"), scan);
  cli(bob, "send-file", conversation, join(dir, "scan.pdf"));
  assert.ok((await savedFromApp(page, "scan.pdf")).equals(scan), "alice's copy is bob's");
  await screenshot(page, "files-phone");
  assert.deepEqual(alice.errors.map((e) => e.message), []);
  await alice.context.close();
});

test("a file from one browser to another, and back", async () => {
  const alice = await openWebApp(browser, server.url);
  const bob = await openWebApp(browser, server.url);
  await registerInApp(alice.page, "alice-web@files.test");
  await registerInApp(bob.page, "bob-web@files.test");
  await (await newConversation(alice.page, "bob-web@files.test")).waitFor({ state: "detached" });
  await say(alice.page, "a file follows");
  await bob.page.getByRole("button", { name: /alice-web@files\.test/ }).click();
  await article(bob.page, "a file follows").waitFor({ timeout: 30_000 });

  const minutes = randomBytes(900_000);
  await alice.page.getByLabel("Attach file").setInputFiles({ name: "minutes.odt", mimeType: "application/octet-stream", buffer: minutes });
  assert.ok((await savedFromApp(bob.page, "minutes.odt")).equals(minutes), "bob's copy is alice's");
  const answer = randomBytes(40_000);
  await bob.page.getByLabel("Attach file").setInputFiles({ name: "answer.bin", mimeType: "application/octet-stream", buffer: answer });
  assert.ok((await savedFromApp(alice.page, "answer.bin")).equals(answer), "alice's copy is bob's");
  assert.deepEqual([...alice.errors, ...bob.errors].map((e) => e.message), []);
  await alice.context.close();
  await bob.context.close();
});

// The web app as a full device of an account: linked from the command line, linking the
// command line in turn, listing and revoking devices, and showing the safety number with a
// contact. Real server, real `missive` command, headless Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  startServer,
  launchBrowser,
  openWebApp,
  cli,
  cliBin,
  cliSync,
  screenshot,
  accessibilityViolations,
  keepRecoveryKey,
  registerInApp,
  newConversation,
  say,
  terminalUser,
  freshHome,
} from "./harness.mjs";

const DOMAIN = "devices.test";
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

/** Starts `missive --home HOME ARGS...` without waiting: its stdout lines as they come, and
 *  its exit. */
function background(home, ...args) {
  const child = spawn(cliBin, ["--home", home, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  const waiters = [];
  child.stdout.on("data", (chunk) => {
    out += chunk;
    for (const w of waiters) w();
  });
  child.stderr.on("data", (chunk) => (err += chunk));
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve({ code, out, err })));
  return {
    exited,
    /** The first stdout line matching `pattern`. */
    line(pattern) {
      return new Promise((resolve, reject) => {
        const look = () => {
          const found = out.split("\n").find((l) => pattern.test(l.trim()));
          if (found) resolve(found.trim());
        };
        waiters.push(look);
        look();
        exited.then(({ code }) => reject(new Error(`exited (${code}) before printing it: ${err}`)));
      });
    },
  };
}

const LINK_CODE = /^[a-z2-7]{4}(-[a-z2-7]{1,4}){6}$/i;

function article(page, text) {
  return page.getByRole("article").filter({ hasText: text });
}

test("a browser linked from the command line has its conversations and history", async () => {
  const dave = terminal("dave");
  const erin = terminal("erin");
  cli(dave, "dm", `erin@${DOMAIN}`, "before the browser came");
  assert.deepEqual(cliSync(erin), [[`dave@${DOMAIN}`, "before the browser came"]]);

  const link = background(dave, "link", "--timeout", "120");
  const code = await link.line(LINK_CODE);
  const { page, errors } = await openWebApp(browser, server.url);
  await page.getByRole("button", { name: "Link to an existing account" }).click();
  assert.equal(await page.getByRole("textbox", { name: "Server" }).inputValue(), server.url);
  await page.getByRole("textbox", { name: "Link code" }).fill(code);
  await page.getByRole("button", { name: "Link this browser" }).click();
  await page.getByRole("button", { name: "New conversation" }).waitFor({ timeout: 60_000 });
  const linked = await link.exited;
  assert.equal(linked.code, 0, linked.err);

  await page.getByRole("button", { name: new RegExp(`erin@${DOMAIN}`) }).click();
  await article(page, "before the browser came").waitFor();
  await page.getByRole("textbox", { name: "Message" }).fill("written in the browser");
  await page.getByRole("button", { name: "Send" }).click();
  await article(page, "written in the browser").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  assert.deepEqual(cliSync(erin), [[`dave@${DOMAIN}`, "written in the browser"]]);
  // Erin answers: the browser and the terminal both read it.
  cli(erin, "dm", `dave@${DOMAIN}`, "got it");
  await article(page, "got it").waitFor();
  assert.ok(cliSync(dave).some(([from, text]) => from === `erin@${DOMAIN}` && text === "got it"));
  assert.deepEqual(errors, []);
});

test("the app links a terminal, lists it and revokes it; safety numbers match", async () => {
  const { page, errors } = await openWebApp(browser, server.url, { bypassCSP: true });
  await page.getByRole("textbox", { name: "Address" }).fill(`fred@${DOMAIN}`);
  await page.getByRole("button", { name: "Register" }).click();
  await keepRecoveryKey(page);
  await page.getByRole("button", { name: "New conversation" }).waitFor();

  await page.getByRole("button", { name: "Devices" }).click();
  const dialog = page.getByRole("dialog", { name: "Devices" });
  await dialog.getByText("this device").waitFor();
  // A link given up frees the engine at once: the next one starts with a new code (it would
  // wait minutes behind the first otherwise).
  await dialog.getByRole("button", { name: "Link a new device" }).click();
  const shown = dialog.getByLabel("Link code", { exact: true });
  await shown.waitFor();
  const abandoned = (await shown.innerText()).trim();
  await dialog.getByRole("button", { name: "Cancel the link" }).click();
  await dialog.getByRole("button", { name: "Link a new device" }).click({ timeout: 10_000 });
  await page.waitForFunction(
    (old) => {
      const code = document.querySelector('[aria-label="Link code"]');
      return code && code.textContent.trim() !== old;
    },
    abandoned,
    { timeout: 10_000 },
  );
  assert.equal(await dialog.getByRole("alert").count(), 0, "a cancelled link is no failure");
  const code = (await shown.innerText()).trim();
  assert.match(code, LINK_CODE);
  await dialog.getByRole("img", { name: "QR code of the link code" }).waitFor();
  assert.deepEqual(await accessibilityViolations(page), []);
  await screenshot(page, "link-a-device");

  const laptop = freshHome("fred-laptop");
  const joined = await background(laptop, "join", "--server", server.url, code).exited;
  assert.equal(joined.code, 0, joined.err);
  await dialog.getByText(/Linked device/).waitFor({ timeout: 60_000 });
  const laptopId = JSON.parse(
    cli(laptop, "devices", "--json")
      .trim()
      .split("\n")
      .find((l) => JSON.parse(l).current),
  ).id;
  const revoke = dialog.getByRole("button", { name: `Revoke device ${laptopId.slice(0, 8)}` });
  await revoke.waitFor();
  // The terminal sees both devices on the signed list.
  const listed = cli(laptop, "devices", "--json").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(listed.length, 2);
  assert.ok(listed.every((d) => d.listed && d.list_version === 2), JSON.stringify(listed));

  page.once("dialog", (confirm) => confirm.accept());
  await revoke.click();
  await revoke.waitFor({ state: "detached", timeout: 30_000 });
  assert.throws(() => cli(laptop, "sync"), /unauthorized|revoked|token/i);
  await dialog.getByRole("button", { name: "Close" }).click();

  // A contact on the command line: both sides show the same safety number.
  const gina = terminal("gina");
  await page.getByRole("button", { name: "New conversation" }).click();
  const create = page.getByRole("dialog", { name: "New conversation" });
  await create.getByRole("textbox", { name: "Members" }).fill(`gina@${DOMAIN}`);
  await create.getByRole("button", { name: "Create" }).click();
  await create.waitFor({ state: "detached" });
  await page.getByRole("button", { name: "Safety number" }).click();
  const numberDialog = page.getByRole("dialog", { name: "Safety number" });
  const digits = (await numberDialog.getByLabel("Safety number digits", { exact: true }).innerText()).split(/\s+/).join(" ");
  const theirs = cli(gina, "verify", `fred@${DOMAIN}`)
    .split("\n")
    .filter((l) => /^\d{5}( \d{5})*$/.test(l.trim()))
    .join(" ");
  assert.equal(digits, theirs);
  assert.match(digits, /^(\d{5} ){11}\d{5}$/);
  assert.deepEqual(await accessibilityViolations(page), []);
  await numberDialog.getByRole("button", { name: "Mark as verified" }).click();
  await numberDialog.getByText("Verified").waitFor();
  await screenshot(page, "safety-number");
  assert.deepEqual(errors, []);
});

test("a group's members: someone added reads what follows, someone removed does not", async () => {
  const hana = terminal("hana");
  const ivan = terminal("ivan");
  const { page, errors } = await openWebApp(browser, server.url, { bypassCSP: true });
  await page.getByRole("textbox", { name: "Address" }).fill(`judy@${DOMAIN}`);
  await page.getByRole("button", { name: "Register" }).click();
  await keepRecoveryKey(page);
  await page.getByRole("button", { name: "New conversation" }).click();
  const create = page.getByRole("dialog", { name: "New conversation" });
  await create.getByRole("textbox", { name: "Members" }).fill(`hana@${DOMAIN}`);
  await create.getByRole("textbox", { name: "Name" }).fill("Ops");
  await create.getByRole("button", { name: "Create" }).click();
  await create.waitFor({ state: "detached" });

  await page.getByRole("button", { name: "Members" }).click();
  const dialog = page.getByRole("dialog", { name: "Members" });
  await dialog.getByRole("button", { name: `Remove hana@${DOMAIN}` }).waitFor();
  await dialog.getByRole("textbox", { name: "Add members" }).fill(`ivan@${DOMAIN}`);
  await dialog.getByRole("button", { name: "Add", exact: true }).click();
  await dialog.getByRole("button", { name: `Remove ivan@${DOMAIN}` }).waitFor();
  assert.deepEqual(await accessibilityViolations(page), []);
  page.once("dialog", (confirm) => confirm.accept());
  await dialog.getByRole("button", { name: `Remove hana@${DOMAIN}` }).click();
  await dialog.getByRole("button", { name: `Remove hana@${DOMAIN}` }).waitFor({ state: "detached" });
  assert.deepEqual(
    await dialog.getByRole("listitem").allInnerTexts(),
    [`ivan@${DOMAIN}\nRemove`, `judy@${DOMAIN}\nyou`].map((t) => t),
  );
  await screenshot(page, "members");
  await dialog.getByRole("button", { name: "Close" }).click();

  await page.getByRole("textbox", { name: "Message" }).fill("after the change");
  await page.getByRole("button", { name: "Send" }).click();
  await article(page, "after the change").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
  assert.deepEqual(cliSync(ivan), [[`judy@${DOMAIN}`, "after the change"]]);
  const named = cli(ivan, "conversations", "--json").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(named[0].name, "Ops");
  assert.ok(!cliSync(hana).some(([, text]) => text === "after the change"));
  assert.deepEqual(errors, []);
});

/** A camera's picture of `svg` (an image of a QR code) for Chromium's fake camera: the image
 *  drawn at 360 pixels on a white 640×480 frame by `page` (any page of a plain profile), as a
 *  one-frame YUV4MPEG2 file, grey (luma only). */
async function cameraFileShowing(page, svg) {
  const [width, height] = [640, 480];
  const luma = await page.evaluate(
    async ({ svg, width, height }) => {
      const image = new Image();
      image.src = `data:image/svg+xml;base64,${btoa(svg)}`;
      await image.decode();
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      const context = canvas.getContext("2d");
      context.fillStyle = "#fff";
      context.fillRect(0, 0, width, height);
      context.imageSmoothingEnabled = false;
      context.drawImage(image, (width - 360) / 2, (height - 360) / 2, 360, 360);
      const rgba = context.getImageData(0, 0, width, height).data;
      let grey = "";
      for (let i = 0; i < rgba.length; i += 4) grey += String.fromCharCode(rgba[i]);
      return btoa(grey);
    },
    { svg, width, height },
  );
  const file = join(mkdtempSync(join(tmpdir(), "missive-camera-")), "qr.y4m");
  const chroma = Buffer.alloc((width / 2) * (height / 2), 128);
  writeFileSync(
    file,
    Buffer.concat([
      Buffer.from(`YUV4MPEG2 W${width} H${height} F5:1 Ip A1:1 C420jpeg\nFRAME\n`),
      Buffer.from(luma, "base64"),
      chroma,
      chroma,
    ]),
  );
  return file;
}

test("a browser links to the account of another by scanning the QR code it shows", async () => {
  const hank = terminal("hank");
  const { page } = await openWebApp(browser, server.url);
  await registerInApp(page, `kim@${DOMAIN}`);
  await newConversation(page, `hank@${DOMAIN}`);
  await say(page, "before the scan");
  await article(page, "before the scan").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });

  await page.getByRole("button", { name: "Devices", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Devices" });
  await dialog.getByRole("button", { name: "Link a new device" }).click();
  const qr = dialog.getByRole("img", { name: "QR code of the link code" });
  await qr.waitFor();
  const blank = await (await browser.newContext()).newPage();
  const camera = await cameraFileShowing(blank, await qr.innerHTML());
  await blank.context().close();

  // The new device: a browser whose camera films the QR code on the first one's screen.
  const filming = await launchBrowser([
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-video-capture=${camera}`,
    "--use-fake-ui-for-media-stream",
  ]);
  try {
    const { page: phone, errors } = await openWebApp(filming, server.url, { phone: true });
    await phone.context().grantPermissions(["camera"]);
    await phone.getByRole("button", { name: "Link to an existing account" }).click();
    await phone.getByRole("button", { name: "Scan the QR code" }).click();
    await phone.getByRole("region", { name: "Scan the QR code" }).waitFor();
    await screenshot(phone, "link-by-scanning-phone");
    await phone.getByRole("button", { name: "New conversation" }).waitFor({ timeout: 60_000 });
    // The link went through on both sides.
    await dialog.getByText(/Linked device/).waitFor({ timeout: 60_000 });
    await phone.getByRole("button", { name: new RegExp(`hank@${DOMAIN}`) }).click();
    await article(phone, "before the scan").waitFor();
    await say(phone, "from the scanned phone");
    await article(phone, "from the scanned phone").filter({ hasText: "Sending…" }).waitFor({ state: "detached" });
    assert.deepEqual(cliSync(hank), [
      [`kim@${DOMAIN}`, "before the scan"],
      [`kim@${DOMAIN}`, "from the scanned phone"],
    ]);
    assert.deepEqual(errors, []);
  } finally {
    await filming.close();
  }
});

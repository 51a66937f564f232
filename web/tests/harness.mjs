// What the browser tests share: a real missive-server (the debug build unless MISSIVE_PROFILE
// says otherwise, serving the web app built in web/dist) on a free port of 127.0.0.1, headless
// Chromium (Debian's, through playwright-core), and the `missive` command for a third device.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "..", "..");
const target = process.env.CARGO_TARGET_DIR ?? join(root, "target");
// The benchmarks (web/bench) run the release build.
const profile = process.env.MISSIVE_PROFILE ?? "debug";
const serverBin = join(target, profile, "missive-server");
export const cliBin = join(target, profile, "missive");
// The hostile server of the threat model, played on a server's data (crates/server/examples).
const hostileBin = join(target, profile, "examples", "hostile");
const webDist = join(root, "web", "dist");

/** A fresh server for `domain`, with open registration, serving the web app; `extraConfig`
 *  is appended to its missive.toml (tables such as `[[labels]]`). */
export async function startServer(domain, extraConfig = "") {
  const dir = mkdtempSync(join(tmpdir(), "missive-web-test-"));
  const data = join(dir, "server");
  execFileSync(serverBin, ["--data", data, "init", "--domain", domain], { stdio: "ignore" });
  const config = join(data, "missive.toml");
  writeFileSync(
    config,
    readFileSync(config, "utf8").replace("open_registration = false", "open_registration = true") +
      extraConfig,
  );
  const child = spawn(
    serverBin,
    ["--data", data, "serve", "--listen", "127.0.0.1:0", "--web", webDist],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, MISSIVE_LOG: "warn" } },
  );
  const url = await new Promise((resolveUrl, reject) => {
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const found = out.match(/listening on (http:\/\/\S+)/);
      if (found) resolveUrl(found[1]);
    });
    child.on("exit", (code) => reject(new Error(`missive-server exited (${code}): ${out}`)));
  });
  return {
    url,
    dir,
    /** Plays an attack of the hostile server on this one's store (`hostile.rs`). */
    hostile(...args) {
      return execFileSync(hostileBin, [data, ...args], { encoding: "utf8" });
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `missive --home HOME ARGS...`; returns its stdout (throws with stderr on failure). */
export function cli(home, ...args) {
  return execFileSync(cliBin, ["--home", home, ...args], { encoding: "utf8" });
}

/** A new, empty home for the `missive` command. */
export function freshHome(name) {
  return join(mkdtempSync(join(tmpdir(), `missive-${name}-`)), "home");
}

/** `address` registered on `server` with the `missive` command (open registration); returns
 *  its home. */
export function terminalUser(server, address) {
  const home = freshHome(address.split("@")[0]);
  cli(home, "register", "--server", server.url, address);
  return home;
}

/** `missive sync --json` of a terminal account: what it printed, as objects. */
export function synced(home) {
  return cli(home, "sync", "--json")
    .trim()
    .split("\n")
    .filter((line) => line)
    .map((line) => JSON.parse(line));
}

/** `missive sync --json` of a terminal account: its new messages as [sender, text]. */
export function cliSync(home) {
  return synced(home).map((m) => [m.sender, m.text]);
}

/** Headless Chromium as this machine allows it: no sandbox (root), no background traffic;
 *  `extraArgs` are further command-line switches (a fake camera, say). */
export async function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
  });
}

/** A new browser profile on engine.html (the engine without the app), once the engine is
 *  loaded; page errors are collected. */
export async function openApp(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(new Error(m.text()));
  });
  await page.goto(new URL("engine.html", url).href);
  await page.waitForFunction(() => document.documentElement.dataset.engine !== undefined);
  const state = await page.evaluate(() => document.documentElement.dataset.engine);
  if (state !== "ready") {
    throw new Error(`the engine did not load: ${errors.map((e) => e.message).join("; ")}`);
  }
  return { context, page, errors };
}

/** A new browser profile (at `viewport`, touch on phones, in `locale` if given, with `init`,
 *  a function or a list of them, run in every page before the app's own scripts) on the web
 *  app itself. */
export async function openWebApp(
  browser,
  url,
  { phone = false, bypassCSP = false, locale, init } = {},
) {
  const context = await browser.newContext({
    ...(locale ? { locale } : {}),
    ...(phone
      ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }
      : { viewport: { width: 1280, height: 800 } }),
    bypassCSP,
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(new Error(m.text()));
  });
  for (const script of [init ?? []].flat()) await page.addInitScript(script);
  await page.goto(url);
  return { context, page, errors };
}

/** An init script (for `openWebApp`): the browser's notifications, granted and recorded in
 *  `window.shown` as [title, body] (a headless browser shows none). */
export function recordNotifications() {
  window.shown = [];
  window.Notification = class {
    static permission = "granted";
    static requestPermission = async () => "granted";
    constructor(title, options) {
      window.shown.push([title, options.body]);
    }
  };
}

/** Saves a screenshot of `page` as target/web-screenshots/NAME.png. */
export async function screenshot(page, name) {
  await page.screenshot({ path: join(target, "web-screenshots", `${name}.png`), fullPage: true });
}

/** axe-core's serious and critical violations on the page as it is now, as "rule: target"
 *  lines. The page's context must bypass its CSP: axe is injected as a script. */
export async function accessibilityViolations(page) {
  await page.addScriptTag({ path: join(root, "web", "node_modules", "axe-core", "axe.min.js") });
  const violations = await page.evaluate(async () => (await window.axe.run()).violations);
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")}`));
}

/** The recovery key screen shown once after registering in the app: reads the key, ticks
 *  "written down" and continues. Returns the key as shown. */
export async function keepRecoveryKey(page) {
  await page.getByRole("heading", { name: "Your recovery key" }).waitFor();
  const key = (await page.getByLabel("Recovery key", { exact: true }).innerText()).trim();
  const next = page.getByRole("button", { name: "Continue" });
  if (!(await next.isDisabled())) throw new Error("Continue is enabled before the key is kept");
  await page.getByRole("checkbox", { name: "I have written down my recovery key" }).check();
  await next.click();
  return key;
}

/** Registers in the app; `onKeyScreen` runs on the recovery key screen. Returns the key. */
export async function registerInApp(page, address, onKeyScreen) {
  await page.getByRole("textbox", { name: "Address" }).fill(address);
  await page.getByRole("button", { name: "Register" }).click();
  await page.getByRole("heading", { name: "Your recovery key" }).waitFor();
  if (onKeyScreen) await onKeyScreen();
  const key = await keepRecoveryKey(page);
  await page.getByRole("button", { name: "New conversation" }).waitFor();
  return key;
}

/** Fills and submits the "New conversation" dialog; returns the dialog. */
export async function newConversation(page, members, name) {
  await page.getByRole("button", { name: "New conversation" }).click();
  const dialog = page.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("textbox", { name: "Members" }).fill(members);
  if (name) await dialog.getByRole("textbox", { name: "Name" }).fill(name);
  await dialog.getByRole("button", { name: "Create" }).click();
  return dialog;
}

export async function say(page, text) {
  await page.getByRole("textbox", { name: "Message" }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

/** The messages shown, as the text of each article. */
export function article(page, text) {
  return page.getByRole("article").filter({ hasText: text });
}

// The web app's figures (`cargo xtask web-bench`, release builds): the bundle's size, a cold
// load to the conversation list, browser-to-browser message latency on loopback, and a large
// file through the browser against the same file through the `missive` command.
//
// And MLS in large groups on the browser's engine (`Engine.benchGroup`, built in by the
// `bench` feature): the same measurement as `missive-bench --group N`.
//
//   node web/bench/web-bench.mjs [--messages N] [--loads N] [--file-mib N] [--groups N,N]
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { randomBytes, createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import {
  startServer,
  launchBrowser,
  openApp,
  openWebApp,
  cli,
  registerInApp,
  newConversation,
  say,
  article,
} from "../tests/harness.mjs";

const argument = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const MESSAGES = argument("messages", 100);
const LOADS = argument("loads", 5);
const FILE_MIB = argument("file-mib", 100);
const at = process.argv.indexOf("--groups");
const GROUPS = (at > 0 ? process.argv[at + 1] : "1000").split(",").filter(Boolean).map(Number);

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const ms = (n) => `${n.toFixed(1)} ms`;

/** Every file of the app as users get it (the build `cargo xtask web-bench` keeps aside before
 *  building the one with the benchmark code, in MISSIVE_APP_DIST), raw and gzipped (level 9,
 *  as a server would send it). */
function bundle() {
  const dist = process.env.MISSIVE_APP_DIST ?? resolve(import.meta.dirname, "..", "dist");
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (!name.endsWith(".map") && !name.endsWith(".d.ts")) files.push(path);
    }
  };
  walk(dist);
  let raw = 0;
  let gzip = 0;
  const rows = [];
  for (const path of files) {
    const bytes = readFileSync(path);
    const packed = gzipSync(bytes, { level: 9 }).length;
    raw += bytes.length;
    gzip += packed;
    if (/\.(wasm|js)$/.test(path)) rows.push(`  ${path.slice(dist.length + 1)}: ${kib(bytes.length)} (gzip ${kib(packed)})`);
  }
  console.log(`bundle: ${kib(raw)} (gzip ${kib(gzip)}) in ${files.length} files`);
  for (const row of rows) console.log(row);
}

const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;

async function main() {
  bundle();
  const server = await startServer("bench.test");
  const browser = await launchBrowser();
  try {
    // Two browsers in a conversation.
    const alice = await openWebApp(browser, server.url);
    const bob = await openWebApp(browser, server.url);
    await registerInApp(alice.page, "alice@bench.test");
    await registerInApp(bob.page, "bob@bench.test");
    await (await newConversation(alice.page, "bob@bench.test")).waitFor({ state: "detached" });
    await say(alice.page, "hello");
    await bob.page.getByRole("button", { name: /alice@bench\.test/ }).click();
    await article(bob.page, "hello").waitFor();

    // Cold load: a new page of the same profile (account in IndexedDB), HTTP cache emptied,
    // from navigation to the conversation list.
    const loads = [];
    for (let i = 0; i < LOADS; i++) {
      const page = await bob.context.newPage();
      const cdp = await bob.context.newCDPSession(page);
      await cdp.send("Network.clearBrowserCache");
      await bob.page.close();
      const started = performance.now();
      await page.goto(server.url);
      await page.getByRole("button", { name: /alice@bench\.test/ }).waitFor();
      loads.push(performance.now() - started);
      bob.page = page;
    }
    console.log(`cold load to the conversation list (${LOADS} loads): median ${ms(quantile(loads, 0.5))}, max ${ms(Math.max(...loads))}`);
    await bob.page.getByRole("button", { name: /alice@bench\.test/ }).click();
    await article(bob.page, "hello").waitFor();

    // Message latency: Alice presses Send, Bob's page shows the message. Both pages read the
    // machine's wall clock at the moment (Date.now(), to the millisecond): each page's
    // performance.timeOrigin is fixed when it opens, and two pages' origins once disagreed by
    // 27 s (every latency of that run was 27.3 s).
    await bob.page.evaluate(() => {
      window.seen = {};
      new MutationObserver(() => {
        for (const a of document.querySelectorAll("article")) {
          const m = a.textContent.match(/probe-(\d+)/);
          if (m && !(m[1] in window.seen)) window.seen[m[1]] = Date.now();
        }
      }).observe(document.body, { childList: true, subtree: true, characterData: true });
    });
    const latencies = [];
    const box = alice.page.getByRole("textbox", { name: "Message" });
    for (let i = 0; i < MESSAGES; i++) {
      await box.fill(`probe-${i}`);
      // Pressed inside the page, so that the driver's own round trip is not counted.
      const sentAt = await alice.page.evaluate(() => {
        const at = Date.now();
        document.querySelector(".composer button[type=submit]").click();
        return at;
      });
      await bob.page.waitForFunction((n) => n in window.seen, String(i));
      const at = await bob.page.evaluate((n) => window.seen[n], String(i));
      latencies.push(at - sentAt);
    }
    console.log(
      `browser to browser, ${MESSAGES} messages one after another: p50 ${ms(quantile(latencies, 0.5))}, p90 ${ms(quantile(latencies, 0.9))}, p99 ${ms(quantile(latencies, 0.99))}`,
    );

    // A large file: through the browser (upload by Alice's app, download by Bob's app) and
    // through the command line (send-file, download).
    const dir = mkdtempSync(join(tmpdir(), "missive-web-bench-"));
    const path = join(dir, "large.bin");
    const bytes = randomBytes(FILE_MIB << 20);
    writeFileSync(path, bytes);
    const digest = createHash("sha256").update(bytes).digest("hex");
    let started = performance.now();
    await alice.page.getByLabel("Attach file").setInputFiles(path);
    await article(alice.page, "large.bin").filter({ hasText: "Sending…" }).waitFor({ state: "detached", timeout: 600_000 });
    const upload = performance.now() - started;
    const received = article(bob.page, "large.bin");
    await received.waitFor({ timeout: 60_000 });
    started = performance.now();
    const [download] = await Promise.all([
      bob.page.waitForEvent("download", { timeout: 600_000 }),
      received.getByRole("button", { name: "Download large.bin" }).click(),
    ]);
    const saved = await download.path();
    const downloadTime = performance.now() - started;
    const same = createHash("sha256").update(readFileSync(saved)).digest("hex") === digest;
    if (!same) throw new Error("the file the browser saved differs");

    const carol = join(dir, "carol");
    const dave = join(dir, "dave");
    cli(carol, "register", "--server", server.url, "carol@bench.test");
    cli(dave, "register", "--server", server.url, "dave@bench.test");
    const conv = cli(carol, "group", "create", "Files", "--member", "dave@bench.test").trim().split("\n").at(-1);
    cli(dave, "sync");
    started = performance.now();
    const id = cli(carol, "send-file", conv, path).trim().split("\n").at(-1);
    const cliUpload = performance.now() - started;
    cli(dave, "sync");
    started = performance.now();
    cli(dave, "download", id, "--out", join(dir, "inbox"));
    const cliDownload = performance.now() - started;
    const rate = (t) => `${((FILE_MIB * 1000) / t).toFixed(0)} MiB/s`;
    console.log(
      `${FILE_MIB} MiB file: browser upload ${ms(upload)} (${rate(upload)}), download ${ms(downloadTime)} (${rate(downloadTime)}); ` +
        `command line send-file ${ms(cliUpload)} (${rate(cliUpload)}), download ${ms(cliDownload)} (${rate(cliDownload)})`,
    );

    // Large groups, on the page's own thread of engine.html.
    const engine = await openApp(browser, server.url);
    for (const size of GROUPS) {
      const report = await engine.page.evaluate((n) => window.missive.Engine.benchGroup(n), size);
      const line = (name) => {
        const r = report[name];
        return `${name}: committer ${ms(r.commit_ms)}, commit ${r.commit_bytes} B, member processes it in ${ms(r.process_ms)}` +
          (r.join_ms === undefined ? "" : `; Welcome ${r.welcome_bytes} B, joined in ${ms(r.join_ms)}`);
      };
      console.log(`MLS in the browser, a group of ${size} devices (built in ${(report.build_ms / 1000).toFixed(1)} s):`);
      for (const name of ["add_with_path", "add_without_path", "remove"]) console.log(`  ${line(name)}`);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
}

await main();

// Calls between the web app and the `missive` command: Chromium's fake microphone plays a
// tone file, the terminal user plays another; each side must hear the other's tone, through
// the server's relay, with every frame sealed (SFrame) by the engine in the app's Worker.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  accessibilityViolations,
  cli,
  cliBin,
  launchBrowser,
  newConversation,
  openWebApp,
  registerInApp,
  screenshot,
  startServer,
  terminalUser,
} from "./harness.mjs";

const RATE = 48_000;
const work = mkdtempSync(join(tmpdir(), "missive-call-test-"));

/** A 16-bit mono WAV of a sine at `hz`, `seconds` long. */
function toneWav(path, hz, seconds) {
  const n = Math.round(RATE * seconds);
  const data = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    data.writeInt16LE(Math.round(Math.sin((2 * Math.PI * hz * i) / RATE) * 0.3 * 32767), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(RATE, 24);
  header.writeUInt32LE(RATE * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([header, data]));
  return path;
}

/** The samples of a 16-bit mono WAV as written by `missive call --record`. */
function readWav(path) {
  const bytes = readFileSync(path);
  let at = 12;
  while (bytes.toString("latin1", at, at + 4) !== "data") at += 8 + bytes.readUInt32LE(at + 4);
  const length = bytes.readUInt32LE(at + 4) / 2;
  return Int16Array.from({ length }, (_, i) => bytes.readInt16LE(at + 8 + i * 2));
}

/** Goertzel: the power of `hz` in `samples`. */
function power(samples, hz) {
  const k = 2 * Math.cos((2 * Math.PI * hz) / RATE);
  let s1 = 0;
  let s2 = 0;
  for (const x of samples) {
    const s = x + k * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return s1 * s1 + s2 * s2 - k * s1 * s2;
}

/** Over 100 ms windows with sound in them: how many there are, and the share of each tone's
 *  power among `tones` (summed over those windows). */
function toneShares(samples, tones) {
  const window = RATE / 10;
  const totals = tones.map(() => 0);
  let loud = 0;
  for (let at = 0; at + window <= samples.length; at += window) {
    const part = samples.subarray(at, at + window);
    if (part.reduce((m, x) => Math.max(m, Math.abs(x)), 0) < 300) continue;
    loud++;
    const powers = tones.map((hz) => power(part, hz));
    const sum = powers.reduce((a, b) => a + b, 0) || 1;
    powers.forEach((p, i) => (totals[i] += p / sum));
  }
  return { loud, shares: totals.map((t) => (loud ? t / loud : 0)) };
}

let server;
let browser;

before(async () => {
  server = await startServer("call.test");
  browser = await launchBrowser([
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${toneWav(join(work, "880.wav"), 880, 20)}`,
    // The relay of a test server listens on 127.0.0.1 only.
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
  ]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Keeps the page's peer connections within reach of the test (the app keeps them private). */
function watchPeerConnections() {
  const Original = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
}

/** What the page hears: the energy of its inbound audio, and the loudest frequency of what it
 *  plays, measured with Web Audio over its receiving tracks. */
async function heardInPage(page) {
  return page.evaluate(async () => {
    const pc = window.__peerConnections.at(-1);
    let energy = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp") energy += r.totalAudioEnergy ?? 0;
    });
    const audio = new AudioContext();
    await audio.resume();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 8192;
    // One source per receiving slot (a source plays only the first track of its stream).
    for (const receiver of pc.getReceivers()) {
      audio.createMediaStreamSource(new MediaStream([receiver.track])).connect(analyser);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    let loudest = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[loudest]) loudest = i;
    await audio.close();
    return { energy, loudestHz: (loudest * audio.sampleRate) / analyser.fftSize };
  });
}

test("a call between the app and the command line: each hears the other's tone, and the relay only forwards sealed frames", async () => {
  const tom = terminalUser(server, "tom@call.test");
  const bea = await openWebApp(browser, server.url, { bypassCSP: true, init: watchPeerConnections });
  await registerInApp(bea.page, "bea@call.test");
  await (await newConversation(bea.page, "tom@call.test")).waitFor({ state: "detached" });
  const conversation = JSON.parse(cli(tom, "conversations", "--json").trim().split("\n")[0]).id;

  // Tom calls, playing 440 Hz; he hangs up once everyone else has.
  const tomRecording = join(work, "tom.wav");
  const tomCall = spawn(
    cliBin,
    ["--home", tom, "call", "start", conversation, "--play", toneWav(join(work, "440.wav"), 440, 30),
      "--record", tomRecording, "--json"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let tomOut = "";
  let tomErr = "";
  tomCall.stdout.on("data", (c) => (tomOut += c));
  tomCall.stderr.on("data", (c) => (tomErr += c));
  const tomDone = new Promise((resolve) => tomCall.on("exit", resolve));
  try {
    // The app rings; Bea accepts.
    const ringing = bea.page.getByRole("alertdialog", { name: "Incoming call" });
    await ringing.getByText("tom@call.test is calling").waitFor({ timeout: 30_000 });
    assert.deepEqual(await accessibilityViolations(bea.page), []);
    await ringing.getByRole("button", { name: "Accept" }).click();
    const panel = bea.page.getByRole("region", { name: /^Call in / });
    await panel.getByText(/In call · \d+:\d\d/).waitFor({ timeout: 20_000 });
    await panel.getByRole("listitem").filter({ hasText: "tom@call.test" }).waitFor();
    // Tom's tone is heard, and shown as him speaking.
    await panel.locator("li.speaking").filter({ hasText: "tom@call.test" }).waitFor({ timeout: 20_000 });
    await screenshot(bea.page, "call");
    assert.deepEqual(await accessibilityViolations(bea.page), []);
    await new Promise((r) => setTimeout(r, 4000));
    const heard = await heardInPage(bea.page);
    assert.ok(heard.energy > 0.01, `the app heard energy ${heard.energy}`);
    assert.ok(Math.abs(heard.loudestHz - 440) < 15, `the app's loudest frequency is ${heard.loudestHz} Hz`);

    // Muted, Bea sends silence: no tone reaches Tom meanwhile (checked in his recording below).
    await panel.getByRole("button", { name: "Mute" }).click();
    await panel.getByRole("button", { name: "Unmute", pressed: true }).waitFor();
    await new Promise((r) => setTimeout(r, 2000));
    await panel.getByRole("button", { name: "Unmute" }).click();
    await new Promise((r) => setTimeout(r, 2000));

    // Bea hangs up; Tom, alone, ends the call and says so, with who was in it.
    await panel.getByRole("button", { name: "Hang up" }).click();
    await panel.waitFor({ state: "detached" });
    const code = await tomDone;
    assert.equal(code, 0, tomErr);
    await bea.page.getByRole("article", { name: /Call ended after \d+ s/ }).waitFor();
    assert.equal(await bea.page.getByRole("article", { name: /Missed call/ }).count(), 0);
  } finally {
    tomCall.kill();
  }

  // Tom heard Bea: every frame of hers opened with the call's keys (none refused), and her
  // tone (880 Hz), never his own, in his recording.
  const summary = JSON.parse(tomOut.trim().split("\n").at(-1));
  assert.equal(summary.refused, 0, tomErr);
  assert.ok(summary.heard["bea@call.test"] > 250, JSON.stringify(summary));
  const { loud, shares } = toneShares(readWav(tomRecording), [440, 880]);
  assert.ok(loud >= 40, `${loud} windows of sound in Tom's recording`);
  assert.ok(shares[1] > 0.9, `Tom heard 880 Hz at ${shares[1]}`);
  assert.ok(shares[0] < 0.05, `Tom heard his own 440 Hz at ${shares[0]}`);
  assert.deepEqual(bea.errors, []);
});

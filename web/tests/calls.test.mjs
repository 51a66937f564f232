// Calls between the web app and the `missive` command: Chromium's fake microphone plays a
// tone file, the terminal user plays another; each side must hear the other's tone, through
// the server's relay, with every frame sealed (SFrame) by the engine in the app's Worker.
// Chromium's fake camera shows a picture of one colour (a file too), which the other browser
// must see, in that colour.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, connect } from "node:net";
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

/** Over 100 ms windows with sound in them: how many there are, how many silent ones lie
 *  between them, and the share of each tone's power among `tones` (averaged over them). */
function toneShares(samples, tones) {
  const window = RATE / 10;
  const totals = tones.map(() => 0);
  let loud = 0;
  let quiet = 0;
  let quietRun = 0;
  for (let at = 0; at + window <= samples.length; at += window) {
    const part = samples.subarray(at, at + window);
    if (part.reduce((m, x) => Math.max(m, Math.abs(x)), 0) < 300) {
      quietRun++;
      continue;
    }
    // Silence between sounds (before the first is the wait for the others).
    if (loud > 0) quiet += quietRun;
    quietRun = 0;
    loud++;
    const powers = tones.map((hz) => power(part, hz));
    const sum = powers.reduce((a, b) => a + b, 0) || 1;
    powers.forEach((p, i) => (totals[i] += p / sum));
  }
  return { loud, quiet, shares: totals.map((t) => (loud ? t / loud : 0)) };
}

let server;
/** A Y4M video (Chromium's fake camera plays it in a loop): 320×240, all of one colour given
 *  in full-range YCbCr. */
function colourY4m(path, [y, cb, cr]) {
  const [w, h] = [320, 240];
  const frame = Buffer.concat([
    Buffer.from("FRAME\n"),
    Buffer.alloc(w * h, y),
    Buffer.alloc((w * h) / 4, cb),
    Buffer.alloc((w * h) / 4, cr),
  ]);
  writeFileSync(path, Buffer.concat([Buffer.from(`YUV4MPEG2 W${w} H${h} F30:1 Ip A1:1 C420jpeg\n`), ...Array(30).fill(frame)]));
  return path;
}
const RED = [76, 85, 255];
const BLUE = [29, 255, 107];

let browser;
const tone440 = toneWav(join(work, "440.wav"), 440, 60);
const tone660 = toneWav(join(work, "660.wav"), 660, 20);
/** Chromium for calls: a fake microphone (a tone file, given apart) it may use unasked. */
const CALL_SWITCHES = [
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  // The relay of a test server listens on 127.0.0.1 only.
  "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
];

before(async () => {
  server = await startServer("call.test");
  browser = await launchBrowser([
    ...CALL_SWITCHES,
    `--use-file-for-fake-audio-capture=${toneWav(join(work, "880.wav"), 880, 20)}`,
    `--use-file-for-fake-video-capture=${colourY4m(join(work, "red.y4m"), RED)}`,
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

/** What the page hears: the energy of its inbound audio, and, measured with Web Audio over
 *  its receiving tracks for a second, the level (dB) at each of `tones` and the loudest
 *  frequency. */
async function heardInPage(page, tones) {
  return page.evaluate(async (tones) => {
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
    for (const receiver of pc.getReceivers().filter((r) => r.track.kind === "audio")) {
      audio.createMediaStreamSource(new MediaStream([receiver.track])).connect(analyser);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    const hzPerBin = audio.sampleRate / analyser.fftSize;
    let loudest = 1;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[loudest]) loudest = i;
    // A tone's level: the loudest bin within 10 Hz of it.
    const levels = tones.map((hz) => {
      const at = Math.round(hz / hzPerBin);
      return Math.max(...bins.slice(at - 2, at + 3));
    });
    await audio.close();
    return { energy, loudestHz: loudest * hzPerBin, levels };
  }, tones);
}

/** The picture captioned `label` in the page's call, as shown: its size and mean colour (RGB),
 *  or nothing while it has no frame. */
async function pictureIn(page, label) {
  return page.evaluate((label) => {
    const figure = [...document.querySelectorAll("figure.video")].find(
      (f) => f.querySelector("figcaption")?.textContent === label,
    );
    const video = figure?.querySelector("video");
    if (!video?.videoWidth) return undefined;
    const canvas = document.createElement("canvas");
    [canvas.width, canvas.height] = [video.videoWidth, video.videoHeight];
    const g = canvas.getContext("2d", { willReadFrequently: true });
    g.drawImage(video, 0, 0);
    const pixels = g.getImageData(0, 0, canvas.width, canvas.height).data;
    const rgb = [0, 0, 0];
    for (let i = 0; i < pixels.length; i += 4) for (let c = 0; c < 3; c++) rgb[c] += pixels[i + c];
    return { width: video.videoWidth, height: video.videoHeight, rgb: rgb.map((x) => Math.round(x / (pixels.length / 4))) };
  }, label);
}

/** Waits until the page shows `label`'s picture in the colour `wanted` ("red", "blue"). */
async function seesColour(page, label, wanted) {
  const channel = { red: 0, blue: 2 }[wanted];
  let last;
  for (let tries = 0; tries < 100; tries++) {
    last = await pictureIn(page, label);
    if (last && last.rgb[channel] > 180 && last.rgb.every((v, c) => c === channel || v < 80)) return last;
    await sleep(200);
  }
  throw new Error(`no ${wanted} picture of ${label}: ${JSON.stringify(last)}`);
}

/** How many video frames the page decoded, over all its receiving slots. */
async function framesDecoded(page) {
  return page.evaluate(async () => {
    let frames = 0;
    (await window.__peerConnections.at(-1).getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded ?? 0;
    });
    return frames;
  });
}

/** `missive call ARGS...` of a terminal user, running: its JSON summary and stderr once done. */
function terminalCall(home, ...args) {
  const child = spawn(cliBin, ["--home", home, "call", ...args, "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c) => (out += c));
  child.stderr.on("data", (c) => (err += c));
  const done = new Promise((resolve) => child.on("exit", resolve));
  return {
    /** Waits for the end; its exit code must be 0. Returns the summary. */
    async summary() {
      assert.equal(await done, 0, err);
      return JSON.parse(out.trim().split("\n").at(-1));
    },
    stderr: () => err,
    kill: () => child.kill(),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port free on 127.0.0.1 now. */
function freePort() {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port) {
  for (let tries = 0; tries < 100; tries++) {
    const up = await new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1", () => resolve(socket.end() && true));
      socket.on("error", () => resolve(false));
    });
    if (up) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on port ${port}`);
}

/** A network that lets no UDP out but through a TURN server: the page's peer connections may
 *  use relayed candidates only (and the TURN server takes TCP only). */
function firewalled() {
  const Original = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (config = {}) {
    const pc = new Original({ ...config, iceTransportPolicy: "relay" });
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
}

/** The page's local candidate the media flows through: its type and, relayed, the protocol
 *  to the TURN server. */
async function mediaPath(page) {
  return page.evaluate(async () => {
    const stats = await window.__peerConnections.at(-1).getStats();
    const reports = [...stats.values()];
    const transport = reports.find((r) => r.type === "transport" && r.selectedCandidatePairId);
    const pair = stats.get(transport?.selectedCandidatePairId);
    const local = stats.get(pair?.localCandidateId);
    return { type: local?.candidateType, relayProtocol: local?.relayProtocol, port: local?.port };
  });
}

/** The local UDP ports of the page's connection to the relay (one per address it has). */
async function localPorts(page) {
  return page.evaluate(async () => {
    const ports = [];
    (await window.__peerConnections.at(-1).getStats()).forEach((r) => {
      if (r.type === "local-candidate" && r.protocol === "udp") ports.push(r.port);
    });
    return [...new Set(ports)];
  });
}

/** Kills the paths through local UDP `ports`, both ways (as a phone's paths die when it
 *  leaves a Wi-Fi network): iptables drops what is sent from them and to them. Returns the
 *  undoing. */
function cutPaths(ports) {
  const rules = ports.flatMap((port) =>
    ["--sport", "--dport"].map((side) => ["OUTPUT", "-o", "lo", "-p", "udp", side, String(port), "-j", "DROP"]),
  );
  for (const rule of rules) execFileSync("iptables", ["-I", ...rule]);
  return () => {
    for (const rule of rules) execFileSync("iptables", ["-D", ...rule]);
  };
}

/** Which 100 ms windows of `samples` carry the tone `hz` (more than half the power of
 *  `tones`, in a window with sound). */
function toneWindows(samples, hz, tones) {
  const window = RATE / 10;
  const windows = [];
  for (let at = 0; at + window <= samples.length; at += window) {
    const part = samples.subarray(at, at + window);
    const { loud, shares } = toneShares(part, tones);
    windows.push(loud > 0 && shares[tones.indexOf(hz)] > 0.5);
  }
  return windows;
}

test("a call between the app and the command line: each hears the other's tone, and the relay only forwards sealed frames", async (t) => {
  const tom = terminalUser(server, "tom@call.test");
  const bea = await openWebApp(browser, server.url, { bypassCSP: true, init: watchPeerConnections });
  await registerInApp(bea.page, "bea@call.test");
  await (await newConversation(bea.page, "tom@call.test")).waitFor({ state: "detached" });
  const conversation = JSON.parse(cli(tom, "conversations", "--json").trim().split("\n")[0]).id;

  // Tom calls, playing 440 Hz; he hangs up once everyone else has.
  const tomRecording = join(work, "tom.wav");
  const tomCall = terminalCall(tom, "start", conversation, "--play", tone440, "--record", tomRecording);
  let summary;
  try {
    // The app rings, and the conversation's line says a call is going on; Bea accepts.
    const ringing = bea.page.getByRole("alertdialog", { name: "Incoming call" });
    await ringing.getByText("tom@call.test is calling").waitFor({ timeout: 30_000 });
    const line = bea.page.getByRole("navigation").getByRole("button", { name: /tom@call\.test/ });
    await line.getByText("Call going on").waitFor();
    assert.deepEqual(await accessibilityViolations(bea.page), []);
    await ringing.getByRole("button", { name: "Accept" }).click();
    const panel = bea.page.getByRole("region", { name: /^Call in / });
    await panel.getByText(/In call · \d+:\d\d/).waitFor({ timeout: 20_000 });
    await panel.getByRole("listitem").filter({ hasText: "tom@call.test" }).waitFor();
    // Tom's tone is heard, and shown as him speaking.
    await panel.locator("li.speaking").filter({ hasText: "tom@call.test" }).waitFor({ timeout: 20_000 });
    await screenshot(bea.page, "call");
    assert.deepEqual(await accessibilityViolations(bea.page), []);
    await sleep(4000);
    const heard = await heardInPage(bea.page, [440, 880]);
    t.diagnostic(`the app: energy ${heard.energy.toFixed(3)}, loudest ${heard.loudestHz.toFixed(0)} Hz, 440/880 Hz at ${heard.levels.map((l) => l.toFixed(0))} dB`);
    assert.ok(heard.energy > 0.01, `the app heard energy ${heard.energy}`);
    assert.ok(Math.abs(heard.loudestHz - 440) < 15, `the app's loudest frequency is ${heard.loudestHz} Hz`);
    assert.ok(heard.levels[0] - heard.levels[1] > 30, `440 Hz over 880 Hz in the app: ${heard.levels}`);

    // Muted, Bea sends silence: no tone reaches Tom meanwhile (checked in his recording below).
    await panel.getByRole("button", { name: "Mute" }).click();
    await panel.getByRole("button", { name: "Unmute", pressed: true }).waitFor();
    await sleep(2000);
    await panel.getByRole("button", { name: "Unmute" }).click();
    await sleep(2000);
    // Another microphone, chosen during the call: the same sending track carries it on.
    const mic = panel.getByRole("combobox", { name: "Microphone" });
    const names = await mic.locator("option").allTextContents();
    await mic.selectOption({ index: 1 });
    const sending = () =>
      bea.page.evaluate(async () => {
        const pc = window.__peerConnections.at(-1);
        let packets = 0;
        (await pc.getStats()).forEach((r) => r.type === "outbound-rtp" && (packets += r.packetsSent));
        return { packets, label: pc.getSenders()[0].track?.label };
      });
    await bea.page.waitForFunction(
      (label) => window.__peerConnections.at(-1).getSenders()[0].track?.label === label,
      names[1],
    );
    const before = await sending();
    await sleep(1000);
    const later = await sending();
    assert.equal(later.label, names[1]);
    assert.ok(later.packets - before.packets > 30, `${later.packets - before.packets} packets in a second`);

    // Bea hangs up; Tom, alone, ends the call and says so, with who was in it.
    await panel.getByRole("button", { name: "Hang up" }).click();
    await panel.waitFor({ state: "detached" });
    summary = await tomCall.summary();
    await bea.page.getByRole("article", { name: /Call ended after \d+ s/ }).waitFor();
    await line.getByText("Call going on").waitFor({ state: "detached" });
    assert.equal(await bea.page.getByRole("article", { name: /Missed call/ }).count(), 0);
  } finally {
    tomCall.kill();
  }

  // Tom heard Bea: every frame of hers opened with the call's keys (none refused), and her
  // tone (880 Hz), never his own, in his recording; her two muted seconds are silent there.
  assert.equal(summary.refused, 0, tomCall.stderr());
  assert.ok(summary.heard["bea@call.test"] > 250, JSON.stringify(summary));
  const { loud, quiet, shares } = toneShares(readWav(tomRecording), [440, 880]);
  t.diagnostic(`Tom heard ${JSON.stringify(summary.heard)}; 440/880 Hz shares ${shares.map((x) => x.toFixed(3))} over ${loud} windows, ${quiet} quiet`);
  assert.ok(loud >= 40, `${loud} windows of sound in Tom's recording`);
  assert.ok(quiet >= 15, `${quiet} quiet windows (muted) in Tom's recording`);
  assert.ok(shares[1] > 0.9, `Tom heard 880 Hz at ${shares[1]}`);
  assert.ok(shares[0] < 0.05, `Tom heard his own 440 Hz at ${shares[0]}`);
  assert.deepEqual(bea.errors, []);
});

test("a group call from the app: two browsers and a terminal each hear both others, and a member removed during it is cut off", async (t) => {
  // Cid's browser plays 660 Hz (its own fake microphone); Bea's plays 880 Hz, Tom 440 Hz.
  const other = await launchBrowser([...CALL_SWITCHES, `--use-file-for-fake-audio-capture=${tone660}`]);
  const tom = terminalUser(server, "tom2@call.test");
  let tomCall;
  try {
    const bea = await openWebApp(browser, server.url, { bypassCSP: true, init: watchPeerConnections });
    const cid = await openWebApp(other, server.url, { phone: true, bypassCSP: true, init: watchPeerConnections });
    await registerInApp(bea.page, "bea2@call.test");
    await registerInApp(cid.page, "cid2@call.test");
    await (await newConversation(bea.page, "cid2@call.test, tom2@call.test", "Crisis")).waitFor({ state: "detached" });
    const conversation = JSON.parse(cli(tom, "conversations", "--json").trim().split("\n")[0]).id;

    // Bea calls from the conversation; Cid accepts on her phone; Tom joins from the terminal.
    await bea.page.getByRole("button", { name: "Call", exact: true }).click();
    const beaPanel = bea.page.getByRole("region", { name: "Call in Crisis" });
    await beaPanel.getByText("Calling…").waitFor({ timeout: 20_000 });
    const ringing = cid.page.getByRole("alertdialog", { name: "Incoming call" });
    await ringing.getByText("bea2@call.test is calling in Crisis").waitFor({ timeout: 30_000 });
    await ringing.getByRole("button", { name: "Accept" }).click();
    const cidPanel = cid.page.getByRole("region", { name: "Call in Crisis" });
    tomCall = terminalCall(tom, "join", conversation, "--play", tone440, "--record", join(work, "tom2.wav"));
    for (const [panel, others] of [
      [beaPanel, ["cid2@call.test", "tom2@call.test"]],
      [cidPanel, ["bea2@call.test", "tom2@call.test"]],
    ]) {
      for (const who of others) {
        await panel.locator("li.speaking").filter({ hasText: who }).waitFor({ timeout: 30_000 });
      }
    }
    await screenshot(cid.page, "group-call-phone");
    assert.deepEqual(await accessibilityViolations(cid.page), []);
    await sleep(3000);
    // Each browser hears both others and not itself: its own tone is 30 dB below theirs.
    for (const [who, page, own, theirs] of [
      ["Bea", bea.page, 880, [440, 660]],
      ["Cid", cid.page, 660, [440, 880]],
    ]) {
      const heard = await heardInPage(page, [own, ...theirs]);
      t.diagnostic(`${who} hears ${own}/${theirs.join("/")} Hz at ${heard.levels.map((l) => l.toFixed(0))} dB`);
      for (const level of heard.levels.slice(1)) {
        assert.ok(level - heard.levels[0] > 30, `${who}: ${heard.levels}`);
      }
    }

    // Bea removes Cid from the conversation: Cid's call ends at once, the others go on.
    await bea.page.getByRole("button", { name: "Members" }).click();
    const members = bea.page.getByRole("dialog", { name: "Members" });
    bea.page.once("dialog", (confirm) => confirm.accept());
    await members.getByRole("button", { name: "Remove cid2@call.test" }).click();
    await members.getByRole("button", { name: "Remove cid2@call.test" }).waitFor({ state: "detached" });
    await members.getByRole("button", { name: "Close" }).click();
    await cid.page
      .getByText("You are no longer a member of this conversation: the call ended.")
      .waitFor({ timeout: 20_000 });
    await cidPanel.waitFor({ state: "detached" });
    await beaPanel.getByRole("listitem").filter({ hasText: "cid2@call.test" }).waitFor({ state: "detached", timeout: 20_000 });
    await sleep(2000);
    const after = await heardInPage(bea.page, [880, 440, 660]);
    t.diagnostic(`after the removal Bea hears 880/440/660 Hz at ${after.levels.map((l) => l.toFixed(0))} dB`);
    assert.ok(after.levels[1] - after.levels[2] > 30, `Cid is still heard: ${after.levels}`);

    // Bea hangs up; Tom, alone, ends the call: the end names the three who were in it.
    await beaPanel.getByRole("button", { name: "Hang up" }).click();
    const summary = await tomCall.summary();
    t.diagnostic(`Tom heard ${JSON.stringify(summary.heard)}, refused ${summary.refused}`);
    assert.equal(summary.refused, 0, tomCall.stderr());
    assert.ok(summary.heard["bea2@call.test"] > 250, JSON.stringify(summary));
    assert.ok(summary.heard["cid2@call.test"] > 100, JSON.stringify(summary));
    const { shares } = toneShares(readWav(join(work, "tom2.wav")), [440, 660, 880]);
    assert.ok(shares[0] < 0.05 && shares[1] > 0.1 && shares[2] > 0.3, `Tom's recording: ${shares}`);
    const history = cli(tom, "history", conversation, "--json").trim().split("\n").map((l) => JSON.parse(l));
    const ended = history.filter((m) => m.event === "call" && m.state === "ended");
    assert.deepEqual(ended.at(-1)?.answered, ["bea2@call.test", "cid2@call.test", "tom2@call.test"]);
    assert.deepEqual(bea.errors, []);
    assert.deepEqual(cid.errors, []);
  } finally {
    tomCall?.kill();
    await other.close();
  }
});

test("where no UDP gets out, the app's call goes through the TURN server (coturn) over TCP", async (t) => {
  const port = await freePort();
  const secret = randomBytes(16).toString("hex");
  // Debian's coturn, as the README sets it up, on loopback: TCP from clients only, UDP on to
  // the relay; credentials from the secret it shares with the server (use-auth-secret).
  const turn = spawn(
    "/usr/bin/turnserver",
    ["-n", "--no-cli", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", `--listening-port=${port}`,
      "--no-udp", "--no-tls", "--no-dtls", "--use-auth-secret", `--static-auth-secret=${secret}`,
      "--realm=turn.test", "--allow-loopback-peers", "--log-file=stdout", "--simple-log", "--verbose"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let turnLog = "";
  turn.stdout.on("data", (c) => (turnLog += c));
  const behind = await startServer(
    "turn.test",
    `turn_urls = ["turn:127.0.0.1:${port}?transport=tcp"]\nturn_secret = "${secret}"\n`,
  );
  let tomCall;
  try {
    await listening(port);
    const tom = terminalUser(behind, "tom@turn.test");
    const bea = await openWebApp(browser, behind.url, { bypassCSP: true, init: firewalled });
    await registerInApp(bea.page, "bea@turn.test");
    await (await newConversation(bea.page, "tom@turn.test")).waitFor({ state: "detached" });
    const conversation = JSON.parse(cli(tom, "conversations", "--json").trim().split("\n")[0]).id;
    tomCall = terminalCall(tom, "start", conversation, "--play", tone440);
    const ringing = bea.page.getByRole("alertdialog", { name: "Incoming call" });
    await ringing.getByRole("button", { name: "Accept" }).click({ timeout: 30_000 });
    const panel = bea.page.getByRole("region", { name: /^Call in / });
    await panel.locator("li.speaking").filter({ hasText: "tom@turn.test" }).waitFor({ timeout: 30_000 });
    const path = await mediaPath(bea.page);
    const heard = await heardInPage(bea.page, [440, 880]);
    t.diagnostic(`media through a ${path.type} candidate over ${path.relayProtocol}; the app hears 440/880 Hz at ${heard.levels.map((l) => l.toFixed(0))} dB`);
    assert.deepEqual({ ...path, port: undefined }, { type: "relay", relayProtocol: "tcp", port: undefined });
    assert.ok(heard.levels[0] - heard.levels[1] > 30, `${heard.levels}`);
    await sleep(2000);
    await panel.getByRole("button", { name: "Hang up" }).click();
    const summary = await tomCall.summary();
    assert.equal(summary.refused, 0, tomCall.stderr());
    assert.ok(summary.heard["bea@turn.test"] > 100, JSON.stringify(summary));
    // The TURN server allocated the relayed address, for the credentials the server gave.
    assert.match(turnLog, /ALLOCATE processed, success/);
    assert.match(turnLog, /username=<\d+:[0-9a-f]+>/);
    assert.deepEqual(bea.errors, []);
  } finally {
    tomCall?.kill();
    turn.kill();
    await behind.stop();
  }
});

test("video: each browser sees the other's camera, in its colour, and a camera turned off is gone from the call", async (t) => {
  // Bea's fake camera is red, Cid's blue; Tom joins from the terminal, with sound only.
  const other = await launchBrowser([
    ...CALL_SWITCHES,
    `--use-file-for-fake-audio-capture=${tone660}`,
    `--use-file-for-fake-video-capture=${colourY4m(join(work, "blue.y4m"), BLUE)}`,
  ]);
  const tom = terminalUser(server, "tom3@call.test");
  let tomCall;
  try {
    const bea = await openWebApp(browser, server.url, { bypassCSP: true, init: watchPeerConnections });
    const cid = await openWebApp(other, server.url, { phone: true, bypassCSP: true, init: watchPeerConnections });
    // When Bea's app asks the server who is in a call (its engine's Worker does).
    const asked = [];
    bea.context.on("request", (r) => new URL(r.url()).pathname === "/v1/calls" && asked.push(Date.now()));
    await registerInApp(bea.page, "bea3@call.test");
    await registerInApp(cid.page, "cid3@call.test");
    await (await newConversation(bea.page, "cid3@call.test, tom3@call.test", "Faces")).waitFor({ state: "detached" });
    const conversation = JSON.parse(cli(tom, "conversations", "--json").trim().split("\n")[0]).id;

    await bea.page.getByRole("button", { name: "Call", exact: true }).click();
    const beaPanel = bea.page.getByRole("region", { name: "Call in Faces" });
    const ringing = cid.page.getByRole("alertdialog", { name: "Incoming call" });
    await ringing.getByRole("button", { name: "Accept" }).click({ timeout: 30_000 });
    const cidPanel = cid.page.getByRole("region", { name: "Call in Faces" });
    tomCall = terminalCall(tom, "join", conversation, "--play", tone440);
    await beaPanel.locator("li.speaking").filter({ hasText: "cid3@call.test" }).waitFor({ timeout: 30_000 });
    assert.equal(await cidPanel.locator("figure.video").count(), 0, "a picture before any camera is on");

    // Bea turns her camera on: she sees herself, and Cid sees her, red.
    await beaPanel.getByRole("button", { name: "Turn camera on" }).click();
    await beaPanel.getByRole("button", { name: "Turn camera off", pressed: true }).waitFor();
    await beaPanel.locator("figure.video").filter({ hasText: "You" }).waitFor();
    const beaSeen = await seesColour(cid.page, "bea3@call.test", "red");
    // Then Cid turns hers on: Bea sees her, blue.
    await cidPanel.getByRole("button", { name: "Turn camera on" }).click();
    const cidSeen = await seesColour(bea.page, "cid3@call.test", "blue");
    t.diagnostic(`Cid sees Bea ${beaSeen.width}×${beaSeen.height} rgb(${beaSeen.rgb}); Bea sees Cid ${cidSeen.width}×${cidSeen.height} rgb(${cidSeen.rgb})`);
    await cidPanel.locator("li.speaking").filter({ hasText: "tom3@call.test" }).waitFor({ timeout: 20_000 });
    await screenshot(cid.page, "video-call-phone");
    await screenshot(bea.page, "video-call");
    assert.deepEqual(await accessibilityViolations(cid.page), []);
    // The pictures go on: frames keep being decoded (each one opened by the engine, which
    // refuses any frame a member did not seal, so the relay forwarded sealed frames only).
    // Meanwhile nobody joins or leaves, and Bea's app does not ask who is in the call: the
    // server pushes each change (it did for Cid and Tom), and the app asks only then, or
    // every 10 s in case the push channel is down.
    const before = await framesDecoded(cid.page);
    const quietFrom = Date.now();
    await sleep(5000);
    const decoded = (await framesDecoded(cid.page)) - before;
    const quietAsks = asked.filter((at) => at >= quietFrom).length;
    t.diagnostic(`Cid decoded ${decoded} video frames in 5 s; Bea's app asked who is in the call ${asked.length} times in all, ${quietAsks} in those 5 s`);
    assert.ok(decoded > 50, `${decoded} frames in 5 s`);
    assert.ok(asked.length > 0, "the app's requests are seen");
    assert.ok(quietAsks <= 1, `${quietAsks} requests in 5 s without a change`);

    // Bea turns her camera off: the camera is released, and her picture leaves Cid's call.
    await beaPanel.getByRole("button", { name: "Turn camera off" }).click();
    await beaPanel.getByRole("button", { name: "Turn camera on", pressed: false }).waitFor();
    await beaPanel.locator("figure.video").filter({ hasText: "You" }).waitFor({ state: "detached" });
    assert.equal(
      await bea.page.evaluate(() => window.__peerConnections.at(-1).getSenders().filter((s) => s.track?.kind === "video").length),
      0,
    );
    await cidPanel.locator("figure.video").filter({ hasText: "bea3@call.test" }).waitFor({ state: "detached", timeout: 10_000 });
    await seesColour(bea.page, "cid3@call.test", "blue");

    // Tom, with sound only, heard both through it all.
    await beaPanel.getByRole("button", { name: "Hang up" }).click();
    await cidPanel.getByRole("button", { name: "Hang up" }).click();
    const summary = await tomCall.summary();
    t.diagnostic(`Tom heard ${JSON.stringify(summary.heard)}, refused ${summary.refused}`);
    assert.equal(summary.refused, 0, tomCall.stderr());
    assert.ok(summary.heard["bea3@call.test"] > 100 && summary.heard["cid3@call.test"] > 100, JSON.stringify(summary));
    assert.deepEqual(bea.errors, []);
    assert.deepEqual(cid.errors, []);
  } finally {
    tomCall?.kill();
    await other.close();
  }
});

test("when the app's path to the relay dies (its network changed), it joins the call again by itself: each side hears the other again", async (t) => {
  const tom = terminalUser(server, "tom4@call.test");
  const bea = await openWebApp(browser, server.url, { bypassCSP: true, init: watchPeerConnections });
  await registerInApp(bea.page, "bea4@call.test");
  await (await newConversation(bea.page, "tom4@call.test")).waitFor({ state: "detached" });
  const conversation = JSON.parse(cli(tom, "conversations", "--json").trim().split("\n")[0]).id;
  const tomRecording = join(work, "tom4.wav");
  // Tom stays for 30 s whoever leaves, so his recording spans the cut.
  const tomCall = terminalCall(tom, "start", conversation, "--play", tone440, "--record", tomRecording, "--duration", "30");
  let undo;
  try {
    await bea.page.getByRole("alertdialog", { name: "Incoming call" }).getByRole("button", { name: "Accept" }).click({ timeout: 30_000 });
    const panel = bea.page.getByRole("region", { name: /^Call in / });
    await panel.locator("li.speaking").filter({ hasText: "tom4@call.test" }).waitFor({ timeout: 30_000 });
    // Bea speaks through her second microphone: the new connection must keep it.
    const mic = panel.getByRole("combobox", { name: "Microphone" });
    const micNames = await mic.locator("option").allTextContents();
    await mic.selectOption({ index: 1 });
    const sendingLabel = () => bea.page.evaluate(() => window.__peerConnections.at(-1).getSenders()[0].track?.label);
    await bea.page.waitForFunction(
      (label) => window.__peerConnections.at(-1).getSenders()[0].track?.label === label,
      micNames[1],
    );
    await sleep(2000);

    // The paths the media may take die: nothing more comes or goes through the page's ports
    // (cutting only the one in use, Chromium's ICE moves to another address within seconds,
    // which is ICE doing its work; this is a network that is gone).
    const before = await mediaPath(bea.page);
    const ports = await localPorts(bea.page);
    undo = cutPaths(ports);
    const cutAt = Date.now();
    await panel.getByText("Reconnecting…").waitFor({ timeout: 15_000 });
    await panel.getByText(/In call · \d+:\d\d/).waitFor({ timeout: 20_000 });
    const back = await mediaPath(bea.page);
    t.diagnostic(`the paths through ports ${ports} cut (media through ${before.port}); the app was back through port ${back.port} after ${Date.now() - cutAt} ms`);
    assert.ok(!ports.includes(back.port), `back through ${back.port}, one of ${ports}`);
    assert.equal(await sendingLabel(), micNames[1], "the microphone chosen before the cut");
    await panel.locator("li.speaking").filter({ hasText: "tom4@call.test" }).waitFor({ timeout: 10_000 });
    await sleep(3000);
    const heard = await heardInPage(bea.page, [440, 880]);
    t.diagnostic(`after the rejoin the app hears 440/880 Hz at ${heard.levels.map((l) => l.toFixed(0))} dB`);
    assert.ok(heard.levels[0] - heard.levels[1] > 30, `${heard.levels}`);
    await panel.getByRole("button", { name: "Hang up" }).click();

    // Tom heard Bea before the cut, nothing for a while, and Bea again after it: every frame
    // of hers opened with the same call's keys (none refused).
    const summary = await tomCall.summary();
    assert.equal(summary.refused, 0, tomCall.stderr());
    const windows = toneWindows(readWav(tomRecording), 880, [440, 880]);
    const first = windows.indexOf(true);
    const last = windows.lastIndexOf(true);
    let gap = 0;
    let run = 0;
    for (const tone of windows.slice(first, last + 1)) {
      run = tone ? 0 : run + 1;
      gap = Math.max(gap, run);
    }
    const after = windows.slice(last - 20, last + 1).filter(Boolean).length;
    t.diagnostic(`Tom heard 880 Hz from window ${first} to ${last}; the longest gap ${gap} windows; ${after} of the last 21 windows before it ended`);
    assert.ok(gap >= 30, `no cut in Tom's recording (longest gap ${gap} windows)`);
    assert.ok(after >= 15, `Tom does not hear Bea again after the cut (${after} windows)`);
    assert.deepEqual(bea.errors, []);
  } finally {
    undo?.();
    tomCall.kill();
  }
});

// The engine's home in the app: a dedicated Worker, so that MLS and its post-quantum keys
// never block the page. It answers the app's calls (protocol.ts) one at a time, as the engine
// runs its flows, and listens on the push channel once an account is open.
import init, { Engine, scanQr } from "missive-engine";
import type { Call, CallFrames, EngineError, Outcome, Reply, Request, TransformSide } from "./protocol";
import { openStorage } from "./storage";

let engine: Engine | undefined;
const ready = init();

function post(reply: Reply) {
  (self as unknown as Worker).postMessage(reply);
}

function identity(e: Engine) {
  return { address: e.address, deviceId: e.deviceId };
}

async function answer(call: Call, id: number): Promise<unknown> {
  const progress = (done: number, total: number) => post({ event: "progress", id, done, total });
  await ready;
  if (call.method === "open") {
    engine = (await Engine.open(await openStorage())) ?? undefined;
    if (engine) listen(engine);
    return engine ? identity(engine) : null;
  }
  if (call.method === "register") {
    engine = await Engine.register(await openStorage(), call.server, call.address, call.invite);
    listen(engine);
    // Shown once, to be written down: only the answer to the registration carries it.
    return { ...identity(engine), recoveryKey: (await engine.recoveryKey()) ?? undefined };
  }
  if (call.method === "recover") {
    engine = await Engine.recover(await openStorage(), call.server, call.address, call.key);
    listen(engine);
    return identity(engine);
  }
  if (call.method === "join") {
    engine = await Engine.join(await openStorage(), call.server, call.code);
    listen(engine);
    return identity(engine);
  }
  // Reading a camera frame needs no account (a new device scans before it has one).
  if (call.method === "scanQr") return scanQr(call.width, call.height, call.rgba);
  if (!engine) throw Object.assign(new Error("no account is open"), { code: "usage" });
  switch (call.method) {
    case "conversations":
      return engine.conversations();
    case "messages":
      return engine.messages(call.conversation, call.last);
    case "send":
      return engine.send(call.conversation, call.text);
    case "sendFile":
      return engine.sendFile(call.conversation, call.file, progress);
    case "downloadFile":
      return engine.downloadFile(call.message, progress);
    case "reply":
      return engine.reply(call.conversation, call.replyTo, call.text);
    case "edit":
      return engine.edit(call.conversation, call.message, call.text);
    case "deleteMessage":
      return engine.deleteMessage(call.conversation, call.message);
    case "react":
      return engine.react(call.conversation, call.message, call.emoji, call.remove);
    case "markRead":
      return engine.markRead(call.conversation);
    case "setTimer":
      return engine.setTimer(call.conversation, call.seconds ?? undefined);
    case "readReceipts":
      return engine.readReceipts(call.on);
    case "eraseExpired":
      return engine.eraseExpired();
    case "search":
      return engine.search(call.text, call.conversation);
    case "policy":
      return engine.policy();
    case "setLabel":
      return engine.setLabel(call.conversation, call.name ?? undefined);
    case "forward":
      return engine.forward(call.message, call.conversation);
    case "typing":
      return engine.typing(call.conversation);
    case "createConversation":
      return engine.createConversation(call.name, call.members);
    case "dm":
      return engine.dm(call.peer, call.text);
    case "sync":
      return engine.sync();
    case "link":
      return engine.link((code: string, qrSvg: string) => post({ event: "linkCode", code, qrSvg }));
    case "cancelLink":
      return engine.cancelLink();
    case "devices":
      return engine.devices();
    case "revokeDevice":
      return engine.revokeDevice(call.deviceId);
    case "safetyNumber":
      return engine.safetyNumber(call.address);
    case "historyBackup":
      return engine.historyBackup(call.on);
    case "markVerified":
      return engine.markVerified(call.address);
    case "acceptNewKey":
      return engine.acceptNewKey(call.address);
    case "identityChanges":
      return engine.identityChanges();
    case "alerts":
      return engine.alerts();
    case "members":
      return engine.members(call.conversation);
    case "addMembers":
      return engine.addMembers(call.conversation, call.users);
    case "removeMembers":
      return engine.removeMembers(call.conversation, call.users);
    case "calls":
      return engine.calls();
    case "iceServers":
      return engine.iceServers();
    case "joinCall":
      frames = newFrames();
      return engine.joinCall(call.conversation, call.offer);
    case "rejoinCall":
      return engine.rejoinCall(call.offer);
    case "callStatus":
      return engine.callStatus();
    case "hangUp":
      return engine.hangUp();
    case "callFrames":
      return frames;
  }
}

// Calls: the page's encoded-frame transforms (RTCRtpScriptTransform) run here, beside the
// engine that holds the keys. Our frames are sealed on their way out; the members' opened
// on their way in, each noted with its sender (who is heard, in which receiving slot). A
// frame that does not open is dropped, never played.
type EncodedFrame = RTCEncodedAudioFrame | RTCEncodedVideoFrame;
/** A transform's end in the Worker (`RTCRtpScriptTransformer`, of the webworker library). */
type FrameTransformer = {
  readable: ReadableStream<EncodedFrame>;
  writable: WritableStream<EncodedFrame>;
  options: TransformSide;
};

function newFrames(): CallFrames {
  return { sent: 0, refused: 0, heard: {}, seen: {}, slots: {}, videoSlots: {} };
}
let frames = newFrames();
let catchingUp = false;

/** A member sealed a frame under an epoch we have not reached: sync now, not later. */
function catchUp(e: Engine) {
  if (catchingUp) return;
  catchingUp = true;
  e.sync()
    .then((outcomes) => outcomes.length && post({ event: "outcomes", outcomes }))
    .catch(() => {})
    .finally(() => (catchingUp = false));
}

type Transforms = { onrtctransform: (e: { transformer: FrameTransformer }) => void };
(self as unknown as Transforms).onrtctransform = ({ transformer }) => {
  const options = transformer.options;
  const seal = new TransformStream<EncodedFrame, EncodedFrame>({
    transform(frame, out) {
      if (!engine) return;
      try {
        if (options.side === "send") {
          frame.data = engine.sealFrame(new Uint8Array(frame.data), options.video).buffer as ArrayBuffer;
          frames.sent++;
        } else {
          const opened = engine.openFrame(new Uint8Array(frame.data), options.video);
          frame.data = opened.payload.buffer as ArrayBuffer;
          const count = options.video ? frames.seen : frames.heard;
          count[opened.address] = (count[opened.address] ?? 0) + 1;
          if (options.video) frames.videoSlots[options.slot] = { device: opened.device, at: Date.now() };
          else frames.slots[options.slot] = opened.device;
        }
        out.enqueue(frame);
      } catch (e) {
        if ((e as EngineError).code === "call_epoch_ahead") catchUp(engine);
        else if (options.side === "receive") frames.refused++;
      }
    },
  });
  transformer.readable.pipeThrough(seal).pipeTo(transformer.writable).catch(() => {});
};

/** Listens for as long as the Worker lives, reconnecting with a growing pause. */
async function listen(e: Engine) {
  let pause = 500;
  for (;;) {
    try {
      post({ event: "connection", online: true });
      await e.listen(
        (outcomes: Outcome[]) => {
          pause = 500;
          post({ event: "outcomes", outcomes });
        },
        (conversations: string[]) => post({ event: "calls", conversations }),
      );
      return;
    } catch {
      post({ event: "connection", online: false });
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 10_000);
    }
  }
}

self.onmessage = async ({ data }: MessageEvent<Request>) => {
  try {
    post({ id: data.id, ok: true, value: await answer(data.call, data.id) });
  } catch (e) {
    const error = e as { code?: string; message?: string };
    post({
      id: data.id,
      ok: false,
      error: { code: error.code ?? "internal", message: error.message ?? String(e) },
    });
  }
};

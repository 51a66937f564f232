// Calls on screen: the call this device is in (who is in it and who speaks, mute, speaker,
// hang up), an incoming call (accept, decline), and the state behind them (`useCalls`). The
// media is call.ts's; joining, ringing, hanging up and the keys are the engine's.
import { useEffect, useRef, useState } from "preact/hooks";
import { CallMedia, microphones, speakers } from "./call";
import { EngineClient, errorText } from "./client";
import { t } from "./i18n";
import type { CallFrames, CallStatus, Identity, JoinedCall, Message, OngoingCall } from "./protocol";

/** How often who speaks (and who is seen) is looked at: in this browser, not at the server. */
const POLL_MS = 1000;
/** How often the server is asked who is in the call, besides whenever it pushes a change
 *  (it does on every join and leave; this is for a push channel down for a while). */
const STATUS_MS = 10_000;
/** A call nobody answers ends after this long, as does an incoming call's ringing. */
const RING_MS = 60_000;
/** Left alone in a call, the page ends it only if still alone after this long: the commit that
 *  removed this device (the server stops listing the call to a non-member at once), or a
 *  member's rejoin, may be on its way. */
const ALONE_MS = 2000;
/** A slot's sound level above which its speaker is shown as speaking (0 to 1). */
const SPEAKING = 0.01;
/** A video slot that had no frame for this long shows nothing (the camera was turned off). */
const VIDEO_IDLE_MS = 2500;
/** The relay out of reach for this long: the call says it is reconnecting. */
const SHAKY_MS = 2000;
/** The relay out of reach for this long: the page joins the call again, with a new connection
 *  (the network changed or dropped; ICE alone would take half a minute to give up). */
const LOST_MS = 5000;

export type ActiveCall = {
  conversation: string;
  media?: CallMedia;
  status?: CallStatus;
  frames?: CallFrames;
  /** Each receiving slot's sound level, and the energy heard so far. */
  levels: number[];
  energy: number;
  muted: boolean;
  /** Our camera is on. */
  camera: boolean;
  /** The connection to the relay is down for now (a new one is on its way). */
  reconnecting: boolean;
  since: number;
};

export type Ringing = { conversation: string; sender: string; callId: string };

/** The calls' state for the app: `start` joins a conversation's call (or starts one),
 *  `onMessage` hears the rings and ends among the messages that arrive. */
export function useCalls(engine: EngineClient, me: Identity, onError: (text: string) => void) {
  const [call, setCall] = useState<ActiveCall>();
  const [ringing, setRinging] = useState<Ringing>();
  const [ongoing, setOngoing] = useState<OngoingCall[]>([]);
  const current = useRef<ActiveCall | undefined>(undefined);
  current.current = call;
  const company = useRef(false);
  /** Since when this device has been alone in the call (after it had company). */
  const aloneSince = useRef<number | undefined>(undefined);
  /** Asks who is in the call now (set while in one). */
  const statusNow = useRef<(() => void) | undefined>(undefined);
  /** Changes the call shown, from what it is now (not from the last render: two answers may
   *  come between renders). */
  const update = (media: CallMedia, change: Partial<ActiveCall>) => {
    const now = current.current;
    if (!now || now.media !== media) return;
    const next = { ...now, ...change };
    current.current = next;
    setCall(next);
  };

  const refreshOngoing = () =>
    engine.call<OngoingCall[]>({ method: "calls" }).then(setOngoing, () => {});

  const hangUp = async () => {
    const media = current.current?.media;
    current.current = undefined;
    setCall(undefined);
    if (media) media.muted = true;
    // Leave first, then close the connection: the relay decides who is the last one out (who
    // says the call ended) as we leave. Closed first, the relay would drop us on its own, and
    // a member leaving meanwhile could find the call over as well as we do: two ends.
    await engine.call({ method: "hangUp" }).catch(() => {});
    media?.close();
    refreshOngoing();
  };

  const start = async (conversation: string) => {
    if (current.current) return;
    setRinging(undefined);
    company.current = false;
    aloneSince.current = undefined;
    const fresh: ActiveCall = {
      conversation,
      levels: [],
      energy: 0,
      muted: false,
      camera: false,
      reconnecting: false,
      since: Date.now(),
    };
    current.current = fresh;
    setCall(fresh);
    let media: CallMedia | undefined;
    let joined = false;
    try {
      const iceServers = await engine.call<RTCIceServer[]>({ method: "iceServers" });
      media = await CallMedia.open(engine, iceServers);
      const answer = await engine.call<JoinedCall>({ method: "joinCall", conversation, offer: media.offer });
      joined = true;
      await media.accept(answer.answer);
      const withMedia = { ...fresh, media, since: Date.now() };
      current.current = withMedia;
      setCall(withMedia);
      refreshOngoing();
    } catch (e) {
      media?.close();
      current.current = undefined;
      setCall(undefined);
      if (joined) engine.call({ method: "hangUp" }).catch(() => {});
      onError(t("Could not join the call: {error}", { error: errorText(e) }));
    }
  };

  // While in a call: who is in it, who speaks; it ends when this device is removed from the
  // conversation, when everyone else has left, or when nobody answered.
  const media = call?.media;
  useEffect(() => {
    if (!media) return;
    const askWho = async () => {
      try {
        const status = await engine.call<CallStatus | undefined>({ method: "callStatus" });
        const now = current.current;
        if (!now || now.media !== media) return;
        if (!status || status.removed) {
          if (status) onError(t("You are no longer a member of this conversation: the call ended."));
          return hangUp();
        }
        const others = status.participants.length;
        if (company.current && others === 0) {
          if (aloneSince.current === undefined) {
            aloneSince.current = Date.now();
            setTimeout(askWho, ALONE_MS);
          } else if (Date.now() - aloneSince.current >= ALONE_MS) return hangUp();
          return;
        }
        aloneSince.current = undefined;
        if (!company.current && others === 0 && Date.now() - now.since > RING_MS) return hangUp();
        company.current ||= others > 0;
        update(media, { status });
      } catch {
        // The server out of reach for a moment: the media goes on, look again next time.
      }
    };
    const speaking = async () => {
      const lost = media.lostFor();
      if (lost > LOST_MS) rejoin(media);
      try {
        const [frames, heard] = await Promise.all([engine.call<CallFrames>({ method: "callFrames" }), media.levels()]);
        update(media, { frames, levels: heard.levels, energy: heard.energy, reconnecting: lost > SHAKY_MS });
      } catch {
        // The Worker busy or the connection closing: look again next time.
      }
    };
    statusNow.current = askWho;
    askWho();
    const timers = [setInterval(speaking, POLL_MS), setInterval(askWho, STATUS_MS)];
    return () => {
      statusNow.current = undefined;
      for (const timer of timers) clearInterval(timer);
    };
  }, [media]);

  /** A rejoin under way (one at a time). */
  const rejoining = useRef(false);
  /** Joins the call again with a new connection in place of `lost`, with the same microphone
   *  (and its mute), speaker and camera; if it fails (the network still down), the next look tries again. */
  const rejoin = async (lost: CallMedia) => {
    if (rejoining.current) return;
    rejoining.current = true;
    let media: CallMedia | undefined;
    try {
      const iceServers = await engine.call<RTCIceServer[]>({ method: "iceServers" });
      media = await CallMedia.open(engine, iceServers, lost.microphone);
      const now = current.current;
      if (!now || now.media !== lost) return media.close();
      media.muted = now.muted;
      if (now.camera) await media.setCamera(true);
      if (lost.speaker) await media.setSpeaker(lost.speaker);
      const answer = await engine.call<JoinedCall>({ method: "rejoinCall", offer: media.offer });
      await media.accept(answer.answer);
      if (current.current?.media !== lost) return media.close();
      update(lost, { media, reconnecting: true });
      lost.close();
    } catch {
      media?.close();
    } finally {
      rejoining.current = false;
    }
  };

  // An incoming call rings for a minute at most.
  useEffect(() => {
    if (!ringing) return;
    const timer = setTimeout(() => setRinging(undefined), RING_MS);
    return () => clearTimeout(timer);
  }, [ringing]);

  /** A message arrived: a ring from someone else, or the end of a call. */
  const onMessage = (m: Message) => {
    const n = m.notice;
    if (n?.kind !== "call") return;
    if (n.ended === null && m.sender !== me.address && !current.current) {
      setRinging({ conversation: m.conversation, sender: m.sender, callId: n.call_id });
      ringNotification(m.sender);
    } else if (n.ended !== null) {
      setRinging((r) => (r?.callId === n.call_id ? undefined : r));
    }
    refreshOngoing();
  };

  /** The server says the call of these conversations changed: someone joined or left. */
  const onCallsChanged = (conversations: string[]) => {
    refreshOngoing();
    const now = current.current;
    if (now && conversations.includes(now.conversation)) statusNow.current?.();
  };

  const setMuted = (muted: boolean) => {
    const now = current.current;
    if (!now?.media) return;
    now.media.muted = muted;
    setCall({ ...now, muted });
  };

  const setCamera = async (on: boolean) => {
    const now = current.current;
    if (!now?.media) return;
    try {
      await now.media.setCamera(on);
      const after = current.current;
      if (after?.media === now.media) setCall({ ...after, camera: on });
    } catch (e) {
      onError(t("Could not turn the camera on: {error}", { error: errorText(e) }));
    }
  };

  return {
    call,
    ringing,
    ongoing,
    start,
    hangUp,
    setMuted,
    setCamera,
    onMessage,
    onCallsChanged,
    refreshOngoing,
    decline: () => setRinging(undefined),
  };
}

/** A system notification for an incoming call, when the app is not what the user looks at
 *  (and notifications were allowed, in "Devices"). */
function ringNotification(sender: string) {
  if (!document.hidden || typeof Notification === "undefined") return;
  if (Notification.permission !== "granted") return;
  new Notification(t("Incoming call"), {
    body: t("{sender} is calling", { sender }),
    tag: "missive-call",
    requireInteraction: true,
  });
}

function clock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

/** The call this device is in. */
export function CallPanel(props: {
  call: ActiveCall;
  title: string;
  onMute(muted: boolean): void;
  onCamera(on: boolean): void;
  onHangUp(): void;
}) {
  const { call } = props;
  const [outputs, setOutputs] = useState<MediaDeviceInfo[]>([]);
  const [inputs, setInputs] = useState<MediaDeviceInfo[]>([]);
  const [deviceError, setDeviceError] = useState("");
  useEffect(() => {
    speakers().then(setOutputs, () => {});
    microphones().then(setInputs, () => {});
  }, [!!call.media]);
  const choose = (change: Promise<void> | undefined) =>
    change?.then(
      () => setDeviceError(""),
      (e) => setDeviceError(errorText(e)),
    );
  const speakingDevices = new Set(
    call.levels.flatMap((level, slot) => (level > SPEAKING && call.frames?.slots[slot] ? [call.frames.slots[slot]] : [])),
  );
  const participants = call.status?.participants ?? [];
  const nameOf = (device: string) => participants.find((p) => p.device === device)?.address || device.slice(0, 8);
  const seen = Object.entries(call.frames?.videoSlots ?? {}).filter(([, v]) => Date.now() - v.at < VIDEO_IDLE_MS);
  const preview = call.camera ? call.media?.cameraStream : undefined;
  return (
    <section class="call" aria-label={t("Call in {title}", { title: props.title })}>
      <p class="call-state" role="status">
        {!call.media
          ? t("Connecting…")
          : call.reconnecting
            ? t("Reconnecting…")
            : participants.length === 0
            ? t("Calling…")
            : t("In call · {time}", { time: clock(Date.now() - (call.status?.started_ms ?? call.since)) })}
      </p>
      <ul class="participants" aria-label={t("In the call")}>
        {participants.map((p) => {
          const speaking = speakingDevices.has(p.device);
          return (
            <li key={p.device} class={speaking ? "speaking" : ""}>
              {p.address || p.device.slice(0, 8)}
              {speaking && <span class="speaking-mark"> {t("speaking")}</span>}
            </li>
          );
        })}
      </ul>
      {(preview || seen.length > 0) && (
        <div class="videos">
          {seen.map(([slot, { device }]) => (
            <Video key={`slot-${slot}`} stream={call.media?.videoStream(Number(slot))} label={nameOf(device)} />
          ))}
          {preview && <Video key="self" stream={preview} label={t("You")} mirrored />}
        </div>
      )}
      <div class="call-actions">
        <button aria-pressed={call.muted} disabled={!call.media} onClick={() => props.onMute(!call.muted)}>
          {call.muted ? t("Unmute") : t("Mute")}
        </button>
        <button aria-pressed={call.camera} disabled={!call.media} onClick={() => props.onCamera(!call.camera)}>
          {call.camera ? t("Turn camera off") : t("Turn camera on")}
        </button>
        <DeviceChoice
          label={t("Microphone")}
          unnamed={(n) => t("Microphone {n}", { n })}
          devices={inputs}
          onChoose={(id) => choose(call.media?.setMicrophone(id))}
        />
        <DeviceChoice
          label={t("Speaker")}
          unnamed={(n) => t("Speaker {n}", { n })}
          devices={outputs}
          onChoose={(id) => choose(call.media?.setSpeaker(id))}
        />
        <button class="hang-up" onClick={props.onHangUp}>{t("Hang up")}</button>
      </div>
      {deviceError && <p class="error" role="alert">{deviceError}</p>}
    </section>
  );
}

/** A picture in the call: a member's camera, or our own (mirrored, as a mirror shows a face). */
function Video(props: { stream?: MediaStream; label: string; mirrored?: boolean }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    const video = ref.current;
    if (!video || !props.stream || video.srcObject === props.stream) return;
    video.muted = true; // the sound is the audio slots'
    video.playsInline = true;
    video.srcObject = props.stream;
    video.play().catch(() => {});
  }, [props.stream]);
  return (
    <figure class="video">
      <video ref={ref} class={props.mirrored ? "mirrored" : ""} />
      <figcaption>{props.label}</figcaption>
    </figure>
  );
}

/** A choice among the browser's microphones or speakers, shown when there is one to make. */
function DeviceChoice(props: {
  label: string;
  /** The name of the nth device, when the browser gives no label. */
  unnamed(n: number): string;
  devices: MediaDeviceInfo[];
  onChoose(deviceId: string): void;
}) {
  if (props.devices.length < 2) return null;
  return (
    <label>
      {props.label}
      <select onChange={(e) => props.onChoose(e.currentTarget.value)}>
        {props.devices.map((d, i) => (
          <option key={d.deviceId} value={d.deviceId}>
            {d.label || props.unnamed(i + 1)}
          </option>
        ))}
      </select>
    </label>
  );
}

/** Someone calls. */
export function IncomingCall(props: { ringing: Ringing; title: string; onAccept(): void; onDecline(): void }) {
  return (
    <section class="incoming-call" role="alertdialog" aria-label={t("Incoming call")}>
      <p>{t("{sender} is calling in {title}", { sender: props.ringing.sender, title: props.title })}</p>
      <div class="call-actions">
        <button class="accept" onClick={props.onAccept}>{t("Accept")}</button>
        <button class="hang-up" onClick={props.onDecline}>{t("Decline")}</button>
      </div>
    </section>
  );
}

// A call's media in the page: one RTCPeerConnection to the server's relay, with our
// microphone on one sending track and a few receiving "slots" the relay puts the speakers in
// (as the command line's participant does: a join or a leave never needs a new offer). Video
// has the same shape: one sending track, empty until the camera is turned on, and a few
// receiving slots. Every frame passes through the engine's Worker: sealed with SFrame going
// out, opened coming in, so the relay forwards only what it cannot read.
import type { EngineClient } from "./client";
import { t } from "./i18n";

/** Receiving slots: how many members can be heard at the same moment. */
export const SLOTS = 4;
/** Receiving video slots: how many cameras can be seen at the same moment. */
export const VIDEO_SLOTS = 4;
/** What the camera is asked for: enough for a face, light enough for a phone's uplink. */
const CAMERA: MediaTrackConstraints = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };
/** How long the offer waits for the browser's own addresses (the relay needs none of them: it
 *  answers the checks our side sends, but an offer with them is the usual one). */
const GATHERING_MS = 1500;

type Slot = { transceiver: RTCRtpTransceiver; audio: HTMLAudioElement };

export class CallMedia {
  /** Muted: a microphone chosen meanwhile starts muted too. */
  private silent = false;
  /** The camera, while it is on. */
  private camera?: MediaStream;
  /** The audio output chosen with `setSpeaker`. */
  private sink?: string;
  /** When the connection to the relay was last seen up (or, before, when it was opened). */
  private lastUp = Date.now();

  private constructor(
    private pc: RTCPeerConnection,
    private mic: MediaStream,
    private sender: RTCRtpSender,
    private slots: Slot[],
    private videoSender: RTCRtpSender,
    /** What each receiving video slot shows. */
    private videoSlots: MediaStream[],
    /** The SDP offer to send to the relay. */
    readonly offer: string,
  ) {}

  /** Opens the microphone (`microphone`, one of `microphones()`, or the default) and makes
   *  the offer; `iceServers` are the TURN servers to reach the relay through when the network
   *  blocks UDP to it. */
  static async open(engine: EngineClient, iceServers: RTCIceServer[], microphone?: string): Promise<CallMedia> {
    // Without it our frames would leave unsealed: no call rather than a call the relay hears.
    if (typeof RTCRtpScriptTransform === "undefined") {
      throw new Error(t("This browser cannot encrypt calls end to end: use a recent Firefox, Safari or Chromium."));
    }
    const audio = microphone ? { deviceId: { exact: microphone } } : true;
    const mic = await navigator.mediaDevices.getUserMedia({ audio, video: false });
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    try {
      const [track] = mic.getAudioTracks();
      const sending = pc.addTransceiver(track, { direction: "sendonly", streams: [mic] });
      sending.sender.transform = engine.transform({ side: "send", video: false });
      const slots: Slot[] = [];
      for (let slot = 0; slot < SLOTS; slot++) {
        const transceiver = pc.addTransceiver("audio", { direction: "recvonly" });
        transceiver.receiver.transform = engine.transform({ side: "receive", slot, video: false });
        const audio = new Audio();
        audio.autoplay = true;
        audio.srcObject = new MediaStream([transceiver.receiver.track]);
        slots.push({ transceiver, audio });
      }
      // The camera's track is put on this sender when it is turned on, and taken off when off.
      // VP8 only (and its retransmissions): the relay forwards it, and what of a frame stays
      // clear is VP8's header.
      const vp8 = (RTCRtpReceiver.getCapabilities("video")?.codecs ?? []).filter((c) =>
        /^video\/(vp8|rtx)$/i.test(c.mimeType),
      );
      const video = pc.addTransceiver("video", { direction: "sendonly" });
      video.setCodecPreferences?.(vp8);
      video.sender.transform = engine.transform({ side: "send", video: true });
      const videoSlots: MediaStream[] = [];
      for (let slot = 0; slot < VIDEO_SLOTS; slot++) {
        const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
        transceiver.setCodecPreferences?.(vp8);
        transceiver.receiver.transform = engine.transform({ side: "receive", slot, video: true });
        videoSlots.push(new MediaStream([transceiver.receiver.track]));
      }
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      return new CallMedia(pc, mic, sending.sender, slots, video.sender, videoSlots, pc.localDescription!.sdp);
    } catch (e) {
      pc.close();
      for (const t of mic.getTracks()) t.stop();
      throw e;
    }
  }

  /** Takes the relay's answer: the media starts. */
  async accept(answer: string) {
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer });
    // The connection is being made from now on: not lost before it had its chance.
    this.lastUp = Date.now();
    for (const { audio } of this.slots) audio.play().catch(() => {});
  }

  /** Whether the relay is reachable (ICE and DTLS done). */
  get connected(): boolean {
    return this.pc.connectionState === "connected";
  }

  /** For how long the relay has been out of reach (ms; 0 while connected): a network that
   *  changed or dropped. */
  lostFor(): number {
    if (this.connected) this.lastUp = Date.now();
    return Date.now() - this.lastUp;
  }

  set muted(on: boolean) {
    this.silent = on;
    for (const t of this.mic.getAudioTracks()) t.enabled = !on;
  }

  /** Speaks through the microphone `deviceId` (one of `microphones()`) from now on: the
   *  same sending track, so nothing is negotiated again. */
  async setMicrophone(deviceId: string) {
    const mic = await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: deviceId } } });
    const [track] = mic.getAudioTracks();
    track.enabled = !this.silent;
    await this.sender.replaceTrack(track);
    for (const t of this.mic.getTracks()) t.stop();
    this.mic = mic;
  }

  /** Turns the camera on (its picture goes to the call) or off (the camera is released). */
  async setCamera(on: boolean) {
    if (on && !this.camera) {
      const camera = await navigator.mediaDevices.getUserMedia({ video: CAMERA });
      await this.videoSender.replaceTrack(camera.getVideoTracks()[0]);
      this.camera = camera;
    } else if (!on && this.camera) {
      await this.videoSender.replaceTrack(null);
      for (const t of this.camera.getTracks()) t.stop();
      this.camera = undefined;
    }
  }

  /** Our camera's picture while it is on (the preview). */
  get cameraStream(): MediaStream | undefined {
    return this.camera;
  }

  /** What the receiving video slot `slot` shows. */
  videoStream(slot: number): MediaStream | undefined {
    return this.videoSlots[slot];
  }

  /** The microphone speaking now (its device id). */
  get microphone(): string | undefined {
    return this.mic.getAudioTracks()[0]?.getSettings().deviceId;
  }

  /** Plays the call on the audio output `deviceId` (one of `speakers()`). */
  async setSpeaker(deviceId: string) {
    for (const { audio } of this.slots) {
      const sink = audio as HTMLAudioElement & { setSinkId?(id: string): Promise<void> };
      await sink.setSinkId?.(deviceId);
    }
    this.sink = deviceId;
  }

  /** The audio output chosen (none: the default). */
  get speaker(): string | undefined {
    return this.sink;
  }

  /** Each slot's sound level now (0 to 1), and the energy heard since the call began. */
  async levels(): Promise<{ levels: number[]; energy: number }> {
    let energy = 0;
    const levels = await Promise.all(
      this.slots.map(async ({ transceiver }) => {
        let level = 0;
        (await transceiver.receiver.getStats()).forEach((r) => {
          if (r.type === "inbound-rtp") {
            level = r.audioLevel ?? 0;
            energy += r.totalAudioEnergy ?? 0;
          }
        });
        return level;
      }),
    );
    return { levels, energy };
  }

  close() {
    for (const t of this.mic.getTracks()) t.stop();
    for (const t of this.camera?.getTracks() ?? []) t.stop();
    for (const { audio } of this.slots) audio.srcObject = null;
    this.pc.close();
  }
}

/** The audio outputs to choose from. */
export async function speakers(): Promise<MediaDeviceInfo[]> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices.filter((d) => d.kind === "audiooutput");
}

/** The microphones to choose from. */
export async function microphones(): Promise<MediaDeviceInfo[]> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices.filter((d) => d.kind === "audioinput");
}

function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, GATHERING_MS);
  });
}

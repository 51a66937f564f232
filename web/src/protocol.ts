// The messages between the app (main thread) and the engine's Worker.
import type {
  CallStatus,
  Conversation,
  JoinedCall,
  OngoingCall,
  Device,
  Label,
  Linked,
  Message,
  Outcome,
  Policy,
  SafetyNumber,
  StoredAlert,
} from "missive-engine";

export type { CallStatus, JoinedCall, OngoingCall };
export type { Conversation, Device, Label, Linked, Message, Outcome, Policy, SafetyNumber, StoredAlert };

/** What the app asks of the engine; each answer carries the request's id. */
export type Call =
  | { method: "open" }
  | { method: "register"; server: string; address: string; invite?: string }
  | { method: "join"; server: string; code: string }
  | { method: "recover"; server: string; address: string; key: string }
  | { method: "scanQr"; width: number; height: number; rgba: Uint8Array }
  | { method: "link" }
  | { method: "cancelLink" }
  | { method: "devices" }
  | { method: "revokeDevice"; deviceId: string }
  | { method: "safetyNumber"; address: string }
  | { method: "markVerified"; address: string }
  | { method: "acceptNewKey"; address: string }
  | { method: "identityChanges" }
  | { method: "historyBackup"; on?: boolean }
  | { method: "alerts" }
  | { method: "members"; conversation: string }
  | { method: "addMembers"; conversation: string; users: string[] }
  | { method: "removeMembers"; conversation: string; users: string[] }
  | { method: "conversations" }
  | { method: "messages"; conversation: string; last?: number }
  | { method: "send"; conversation: string; text: string }
  | { method: "sendFile"; conversation: string; file: File }
  | { method: "downloadFile"; message: string }
  | { method: "reply"; conversation: string; replyTo: string; text: string }
  | { method: "edit"; conversation: string; message: string; text: string }
  | { method: "deleteMessage"; conversation: string; message: string }
  | { method: "react"; conversation: string; message: string; emoji: string; remove: boolean }
  | { method: "markRead"; conversation: string }
  | { method: "setTimer"; conversation: string; seconds: number | null }
  | { method: "readReceipts"; on?: boolean }
  | { method: "eraseExpired" }
  | { method: "search"; text: string; conversation?: string }
  | { method: "policy" }
  | { method: "setLabel"; conversation: string; name: string | null }
  | { method: "forward"; message: string; conversation: string }
  | { method: "typing"; conversation: string }
  | { method: "createConversation"; name?: string; members: string[] }
  | { method: "dm"; peer: string; text: string }
  | { method: "sync" }
  | { method: "calls" }
  | { method: "iceServers" }
  | { method: "joinCall"; conversation: string; offer: string }
  | { method: "rejoinCall"; offer: string }
  | { method: "callStatus" }
  | { method: "hangUp" }
  | { method: "callFrames" };

/** What the call's frame transforms did (in the engine's Worker): frames sent, refused, heard
 *  (audio) and seen (video) per address, which device each receiving audio slot carries now,
 *  and which device each video slot shows, with when its last frame came. */
export type CallFrames = {
  sent: number;
  refused: number;
  heard: Record<string, number>;
  seen: Record<string, number>;
  slots: Record<number, string>;
  videoSlots: Record<number, { device: string; at: number }>;
};

/** Where a frame transform sits: our sending track, or a receiving slot; audio or video. */
export type TransformSide = { side: "send"; video: boolean } | { side: "receive"; slot: number; video: boolean };

// The call is a field of its own: a call's fields never clash with the request's id.
export type Request = { id: number; call: Call };

export type EngineError = { code: string; message: string };

/** From the Worker: an answer, or news pushed by the server. */
export type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: EngineError }
  | { event: "outcomes"; outcomes: Outcome[] }
  | { event: "connection"; online: boolean }
  | { event: "progress"; id: number; done: number; total: number }
  | { event: "linkCode"; code: string; qrSvg: string }
  | { event: "calls"; conversations: string[] };

/** Who this device is, once an account is open. */
export type Identity = { address: string; deviceId: string };

/** The answer to a registration: the account, and its recovery key to write down. */
export type Registered = Identity & { recoveryKey?: string };

//! The TypeScript types of what the engine hands the page (`missive_web.d.ts` carries them
//! beside the bindings wasm-bindgen generates).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A message as the engine stores it. */
export interface Message {
  id: string;
  conversation: string;
  sender: string;
  sender_device: string;
  text: string;
  /** Milliseconds since the Unix epoch, by the sender's clock. */
  sent_at: number;
  /** Milliseconds since the Unix epoch, by the server's clock. */
  server_time: number;
  seq: number;
  /** The message this one answers. */
  reply_to?: string;
  /** A kind of message added after this version (shown as "update Missive"). */
  unsupported?: string;
  file?: { id: string; name: string; size: number; media_type: string };
  /** Its sender changed the text (earlier texts, oldest first, kept on this device). */
  edits?: { text: string; until: number }[];
  /** Deleted by its sender for everyone: `text` is empty, `file` gone. */
  deleted?: boolean;
  /** Each emoji with the addresses of those who reacted with it, in order. */
  reactions?: Record<string, string[]>;
  /** When the conversation's timer erases it (ms since the Unix epoch). */
  expires_at?: number;
  /** No text but a notice: a change of the conversation's settings (the timer set, in
   *  seconds, or off; the label put on, by name, or taken off), a message this device
   *  could not read (the security alert's code, and why in words), or a call (started, or
   *  ended after `ended` seconds with the addresses of those in it). */
  notice?:
    | { kind: "disappear"; seconds: number | null }
    | { kind: "label"; name: string | null }
    | { kind: "unreadable"; code: string; reason: string }
    | { kind: "call"; call_id: string; ended: number | null; answered: string[] };
  /** Forwarded by its sender from another conversation. */
  forwarded?: boolean;
}

/** A sensitivity label and the rules every member's client enforces. */
export interface Label {
  name: string;
  /** #RRGGBB */
  colour: string;
  /** A message moves only to a conversation of this level or more. */
  level: number;
  /** The longest disappearing-message timer allowed, in seconds. */
  max_disappear?: number;
  /** Nothing may be forwarded out of the conversation. */
  no_forward?: boolean;
  downloads?: "allowed" | "in_app" | "off" | "unknown";
  /** Members only from these domains. */
  domains?: string[];
}

/** The organisation's rules: the longest retention (seconds) and the labels it defines. */
export interface Policy {
  max_retention?: number;
  labels: Label[];
}

export interface Conversation {
  id: string;
  name?: string;
  /** The other person of a one-to-one conversation. */
  dm_peer?: string;
  created_at: number;
  /** This device was removed from it. */
  left: boolean;
  /** The disappearing-message timer in seconds, if on. */
  disappear?: number;
  /** How far each member (this user included) received and read it: sequence positions. */
  receipts: Record<string, { delivered: number; read: number }>;
  /** Its sensitivity label, with the rules it carries. */
  label?: Label;
}

/** A device of this account, as the server lists it and our signed device list names it. */
export interface Device {
  id: string;
  /** This browser. */
  current: boolean;
  /** Its certificate is signed by this account's identity key. */
  certified: boolean;
  /** It is on the account's signed device list (the devices others' clients add). */
  listed: boolean;
  list_version: number;
  /** Seconds since the Unix epoch. */
  issued_at: number;
}

/** The safety number with a contact: the same on both sides. */
export interface SafetyNumber {
  /** 12 groups of 5 digits, separated by spaces. */
  digits: string;
  /** What the QR code encodes. */
  qr: string;
  /** The QR code, as an SVG image. */
  qr_svg: string;
  verified: boolean;
  /** The contact's identity key changed and the change is not accepted yet: these are the
   *  digits of the new key, to compare with the contact before `acceptNewKey`. */
  changed: boolean;
}

/** What linking a device did. */
export interface Linked {
  device_id: string;
  conversations: number;
  messages: number;
}

/** A security alert kept by the engine. */
export interface StoredAlert {
  /** Milliseconds since the Unix epoch. */
  at: number;
  code: string;
  detail: string;
}

/** Something that happened while syncing. */
export type Outcome =
  | { type: "message"; message: Message }
  | { type: "changed"; message: Message }
  | { type: "receipts"; conversation: string }
  | { type: "typing"; conversation: string; sender: string }
  | { type: "joined"; conversation: string }
  | { type: "left"; conversation: string }
  | { type: "membership_changed"; conversation: string }
  | { type: "alert"; code: string; detail: string };

/** Where the engine keeps the account: `openStorage()` of web/app/storage.js (IndexedDB). */
export interface EngineStorage {
  load(): Promise<{ snapshot: { seq: number; bytes: Uint8Array } | null; entries: [number, Uint8Array][] }>;
  /** Resolves once `entries` and `snapshot` are durably written, in one transaction. */
  write(entries: [number, Uint8Array][], snapshot: { seq: number; bytes: Uint8Array } | null): Promise<void>;
}

/** Every error the engine throws is an Error with a stable `code`: the server's error code
 *  (`unknown_user`, `stale_epoch`, ...), a security alert's code (`forged_key_package`, ...),
 *  or one of `unknown_user`, `network`, `storage`, `mls`, `usage`, `file`, `io`,
 *  `need_contacts`. */
export interface MissiveError extends Error {
  code: string;
}
"#;

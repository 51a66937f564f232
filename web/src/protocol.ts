// The messages between the app (main thread) and the engine's Worker.
import type { Conversation, Message, Outcome } from "missive-engine";

export type { Conversation, Message, Outcome };

/** What the app asks of the engine; each answer carries the request's id. */
export type Call =
  | { method: "open" }
  | { method: "register"; server: string; address: string; invite?: string }
  | { method: "conversations" }
  | { method: "messages"; conversation: string }
  | { method: "send"; conversation: string; text: string }
  | { method: "createConversation"; name?: string; members: string[] }
  | { method: "dm"; peer: string; text: string }
  | { method: "sync" };

export type Request = { id: number } & Call;

export type EngineError = { code: string; message: string };

/** From the Worker: an answer, or news pushed by the server. */
export type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: EngineError }
  | { event: "outcomes"; outcomes: Outcome[] }
  | { event: "connection"; online: boolean };

/** Who this device is, once an account is open. */
export type Identity = { address: string; deviceId: string };

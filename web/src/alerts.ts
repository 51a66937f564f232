// Security alerts in plain words: what the engine refused or noticed (its stable codes,
// missive_core::AlertCode), said for someone who is not a cryptographer. The engine's own
// detail (technical, in English) stays available under the sentence.
import { t } from "./i18n";

const PLAIN: Record<string, string> = {
  uncertified_device:
    "A device that its owner never approved was offered by the server. Nothing was sent to it: someone may be trying to listen in.",
  forged_key_package:
    "The server handed over keys that do not belong to the person's devices. Nothing was sent with them.",
  identity_changed:
    "A contact's identity key changed. Nothing is sent to them until you compare safety numbers with them and accept the new key.",
  rejected_message: "A message could not be checked as genuine and was not shown.",
  rejected_commit: "A change to a conversation's members could not be checked as genuine and was refused.",
  fork_detected:
    "The server showed this conversation differently to different members: it may be trying to split it.",
  forged_link: "A device link was tampered with and was refused.",
  messages_withheld: "The server held back messages: some were never delivered to this device.",
  delivered_out_of_order: "The server held back a message and delivered it late. It is shown all the same.",
  forged_device_list: "The server showed a list of someone's devices that they never signed. It was refused.",
  device_list_rollback:
    "The server showed an older list of someone's devices (where a removed device could come back). It was refused.",
  unlisted_device:
    "A device that is not on its owner's own list (removed, or added by the server) was refused.",
  hidden_device: "The server hid one of someone's devices from a conversation; their own devices will add it.",
  transparency_failed: "The server's key directory could not prove what it showed. It was not trusted.",
  own_key_logged:
    "The server's key directory holds a key in your name that is not yours: someone may be trying to pass as you.",
  split_view:
    "The server shows different key directories to different people: it may be showing false keys to some.",
};

/** Whether `code` (an engine error's) is a security alert's. */
export function isAlert(code: string | undefined): boolean {
  return code !== undefined && code in PLAIN;
}

/** What an alert means, in the app's language; the detail alone for a code this version does
 *  not know. */
export function plainAlert(code: string, detail: string): string {
  const plain = PLAIN[code];
  return plain ? t(plain) : detail;
}

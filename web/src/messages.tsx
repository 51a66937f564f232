// One message in a conversation, and what can be done to it: reply, react, and for our own,
// edit and delete. Deleted messages, edits, reactions, receipts and the timer's notices are
// the engine's records as it keeps them; nothing here decides who may do what.
import { useState } from "preact/hooks";
import type { EngineClient } from "./client";
import { FileBody } from "./files";
import { t } from "./i18n";
import type { Conversation, Identity, Label, Message } from "./protocol";

/** The reactions offered in one tap. */
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

/** The timers offered, in seconds, with their names. */
export const TIMERS: [number, string][] = [
  [300, "5 minutes"],
  [3600, "1 hour"],
  [86400, "1 day"],
  [604800, "1 week"],
  [2419200, "4 weeks"],
];

/** A timer for people: one of the offered names, or a count of seconds. */
export function timerName(seconds: number | null | undefined): string {
  if (!seconds) return t("Off");
  const offered = TIMERS.find(([s]) => s === seconds);
  return offered ? t(offered[1]) : t("{n} seconds", { n: seconds });
}

/** What the app does with a message when asked. */
export type MessageActions = {
  reply(m: Message): void;
  edit(m: Message): void;
  remove(m: Message): void;
  react(m: Message, emoji: string, remove: boolean): void;
  forward(m: Message, to: string): void;
};

/** A label as a coloured tag. */
export function LabelTag({ label }: { label: Label }) {
  return (
    <span class="label-tag" style={{ borderColor: label.colour, color: label.colour }}>
      {label.name}
    </span>
  );
}

/** Who received and read one of our messages, as "Read by 1 of 2". */
function receiptsLine(m: Message, conversation: Conversation, members: string[]): string | undefined {
  const others = members.filter((a) => a !== m.sender);
  if (others.length === 0) return undefined;
  let delivered = 0;
  let read = 0;
  for (const a of others) {
    const r = conversation.receipts[a];
    if (!r) continue;
    if (r.read >= m.seq) read++;
    if (Math.max(r.read, r.delivered) >= m.seq) delivered++;
  }
  if (read > 0) return t("Read by {n} of {total}", { n: read, total: others.length });
  if (delivered > 0) return t("Delivered to {n} of {total}", { n: delivered, total: others.length });
  return t("Sent");
}

/** A text with its mentions (`@name@domain`) highlighted, ours most. */
function Text({ text, me }: { text: string; me: string }) {
  const parts = text.split(/(\s+)/);
  return (
    <>
      {parts.map((part, i) => {
        const address = part.startsWith("@") ? part.slice(1).replace(/[^\p{L}\p{N}]+$/u, "").toLowerCase() : "";
        if (!address || address.split("@").length !== 2 || address.split("@").some((x) => !x)) return part;
        const rest = part.slice(1 + address.length);
        return (
          <span key={i}>
            <mark class={address === me ? "mention me" : "mention"}>@{part.slice(1, 1 + address.length)}</mark>
            {rest}
          </span>
        );
      })}
    </>
  );
}

export function MessageItem(props: {
  engine: EngineClient;
  m: Message;
  me: Identity;
  conversation: Conversation;
  /** Where it may be forwarded (the others, none under a label that forbids it). */
  forwardTo: Conversation[];
  title(c: Conversation): string;
  members: string[];
  answered?: Message;
  time: string;
  actions: MessageActions;
}) {
  const { m, me, actions } = props;
  const [picking, setPicking] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [forwarding, setForwarding] = useState(false);
  const [target, setTarget] = useState("");
  const own = m.sender === me.address;
  if (m.notice) {
    const n = m.notice;
    if (n.kind === "unreadable") {
      const text = m.sender
        ? t("A message from {sender} could not be read", { sender: m.sender })
        : t("A message could not be read");
      return (
        <article class="notice-line unreadable" aria-label={text}>
          <p>{text}</p>
          <p class="why">{t("Why: {reason}", { reason: n.reason })}</p>
        </article>
      );
    }
    if (n.kind === "call") {
      const text =
        n.ended === null
          ? t("{sender} started a call", { sender: m.sender })
          : n.answered.includes(me.address)
            ? t("Call ended after {length}", { length: callLength(n.ended) })
            : t("Missed call ({length})", { length: callLength(n.ended) });
      const missed = n.ended !== null && !n.answered.includes(me.address);
      return (
        <article class={missed ? "notice-line missed-call" : "notice-line"} aria-label={text}>
          <p>{text}</p>
        </article>
      );
    }
    const text =
      n.kind === "label"
        ? n.name
          ? t("{sender} labelled the conversation {label}", { sender: m.sender, label: n.name })
          : t("{sender} took the label off", { sender: m.sender })
        : n.seconds
          ? t("{sender} set disappearing messages to {timer}", { sender: m.sender, timer: timerName(n.seconds) })
          : t("{sender} turned disappearing messages off", { sender: m.sender });
    return (
      <article class="notice-line" aria-label={text}>
        <p>{text}</p>
      </article>
    );
  }
  const body = m.deleted
    ? <p class="deleted">{t("This message was deleted")}</p>
    : m.unsupported
      ? <p>{t("A message this version cannot display (update Missive)")}</p>
      : m.file
        ? <FileBody engine={props.engine} m={m} label={props.conversation.label} />
        : <p><Text text={m.text} me={me.address} /></p>;
  const mine = (emoji: string) => (m.reactions?.[emoji] ?? []).includes(me.address);
  return (
    <article class={own ? "own" : ""} aria-label={`${m.sender}, ${props.time}`}>
      <header>
        <span class="sender">{m.sender}</span> <time>{props.time}</time>
        {m.edits && !m.deleted && <span class="edited"> · {t("edited")}</span>}
        {m.forwarded && !m.deleted && <span class="forwarded"> · {t("forwarded")}</span>}
        {props.conversation.label && <> <LabelTag label={props.conversation.label} /></>}
        {m.expires_at && <span class="expires" title={t("Disappears at {time}", { time: new Date(m.expires_at).toLocaleString() })}> · ⏱</span>}
      </header>
      {m.reply_to && (
        <blockquote class="quote" aria-label={t("In reply to")}>
          {props.answered
            ? `${props.answered.sender}: ${props.answered.deleted ? t("This message was deleted") : props.answered.text}`
            : t("A message not on this device (sent before it joined, or erased)")}
        </blockquote>
      )}
      {body}
      {m.reactions && (
        <ul class="reactions" aria-label={t("Reactions")}>
          {Object.entries(m.reactions).map(([emoji, who]) => (
            <li key={emoji}>
              <button
                aria-pressed={mine(emoji)}
                aria-label={t("{emoji} {n}: {who}", { emoji, n: who.length, who: who.join(", ") })}
                onClick={() => actions.react(m, emoji, mine(emoji))}
              >
                {emoji} {who.length}
              </button>
            </li>
          ))}
        </ul>
      )}
      {own && !m.deleted && <p class="receipts">{receiptsLine(m, props.conversation, props.members)}</p>}
      {!m.deleted && (
        <div class="message-actions">
          <button onClick={() => actions.reply(m)}>{t("Reply")}</button>
          <button aria-expanded={picking} onClick={() => setPicking(!picking)}>{t("React")}</button>
          {own && !m.file && !m.unsupported && <button onClick={() => actions.edit(m)}>{t("Edit")}</button>}
          {!m.unsupported && props.forwardTo.length > 0 && (
            <button aria-expanded={forwarding} onClick={() => setForwarding(!forwarding)}>{t("Forward")}</button>
          )}
          {own && !confirming && <button onClick={() => setConfirming(true)}>{t("Delete")}</button>}
          {confirming && (
            <span class="confirm" role="group" aria-label={t("Delete this message for everyone?")}>
              <button onClick={() => { setConfirming(false); actions.remove(m); }}>{t("Delete for everyone")}</button>
              <button onClick={() => setConfirming(false)}>{t("Cancel")}</button>
            </span>
          )}
          {forwarding && (
            <span class="picker" role="group" aria-label={t("Forward to")}>
              <select aria-label={t("Forward to")} value={target} onChange={(e) => setTarget(e.currentTarget.value)}>
                <option value="">{t("Choose a conversation")}</option>
                {props.forwardTo.map((c) => (
                  <option key={c.id} value={c.id}>{props.title(c)}</option>
                ))}
              </select>
              <button
                disabled={!target}
                onClick={() => {
                  setForwarding(false);
                  actions.forward(m, target);
                }}
              >
                {t("Send there")}
              </button>
            </span>
          )}
          {picking && (
            <span class="picker" role="group" aria-label={t("Choose a reaction")}>
              {QUICK_REACTIONS.map((emoji) => (
                <button
                  key={emoji}
                  aria-label={t("React with {emoji}", { emoji })}
                  onClick={() => {
                    setPicking(false);
                    actions.react(m, emoji, mine(emoji));
                  }}
                >
                  {emoji}
                </button>
              ))}
            </span>
          )}
        </div>
      )}
    </article>
  );
}

/** The conversation's disappearing-message timer, for every member; none longer than its
 *  label allows. */
export function TimerPicker(props: { conversation: Conversation; onChange(seconds: number | null): void }) {
  const current = props.conversation.disappear ?? 0;
  const offered = TIMERS.some(([s]) => s === current);
  const max = props.conversation.label?.max_disappear;
  return (
    <label class="timer">
      <span>{t("Disappearing messages")}</span>
      <select
        aria-label={t("Disappearing messages")}
        value={String(current)}
        onChange={(e) => {
          const seconds = Number(e.currentTarget.value);
          props.onChange(seconds > 0 ? seconds : null);
        }}
      >
        <option value="0" disabled={max !== undefined}>{t("Off")}</option>
        {!offered && current > 0 && <option value={String(current)}>{timerName(current)}</option>}
        {TIMERS.map(([s, name]) => (
          <option key={s} value={String(s)} disabled={max !== undefined && s > max}>{t(name)}</option>
        ))}
      </select>
    </label>
  );
}

/** The conversation's sensitivity label, chosen among those the organisation defines. */
export function LabelPicker(props: {
  conversation: Conversation;
  labels: Label[];
  onChange(name: string | null): void;
}) {
  if (props.labels.length === 0 && !props.conversation.label) return null;
  const current = props.conversation.label?.name ?? "";
  return (
    <select
      aria-label={t("Sensitivity label")}
      value={current}
      onChange={(e) => props.onChange(e.currentTarget.value || null)}
    >
      <option value="">{t("No label")}</option>
      {current && !props.labels.some((l) => l.name === current) && <option value={current}>{current}</option>}
      {props.labels.map((l) => (
        <option key={l.name} value={l.name}>{l.name}</option>
      ))}
    </select>
  );
}

/** A call's length as people say it: "45 s", "3 min 5 s", "1 h 2 min". */
function callLength(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

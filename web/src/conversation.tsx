// One conversation on screen: its messages (newest page first, more on scrolling back), what
// is being sent, the composer with its file picker, and the conversation's settings.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { EngineClient, errorText } from "./client";
import { MembersDialog, SafetyNumberDialog } from "./devices";
import { AttachButton, dropTarget, fileSize } from "./files";
import { LabelPicker, LabelTag, MessageItem, TimerPicker, type MessageActions } from "./messages";
import { language, t } from "./i18n";
import type { Conversation, Identity, Label, Message } from "./protocol";

/** How often we tell the others that we type, at most. */
export const TYPING_EVERY_MS = 4000;

export function title(c: Conversation): string {
  return c.name ?? c.dm_peer ?? t("Conversation {id}", { id: c.id.slice(0, 8) });
}

/** A message not yet accepted by the server (`replyTo`: the message it answers; `file`: the
 *  file it sends, `progress` how much of it is uploaded, from 0 to 1). */
export type Pending = {
  key: number;
  conversation: string;
  text: string;
  replyTo?: string;
  file?: File;
  progress?: number;
  failed?: string;
};

function day(ms: number) {
  return new Date(ms).toLocaleDateString(language(), { weekday: "long", day: "numeric", month: "long" });
}

/** When a message was sent: the server's time, or for our own (which the server's answer
 *  does not date) our clock's. */
function when(m: Message) {
  return m.server_time || m.sent_at;
}

function time(ms: number) {
  return new Date(ms).toLocaleTimeString(language(), { hour: "2-digit", minute: "2-digit" });
}

export function ConversationView(props: {
  engine: EngineClient;
  me: Identity;
  conversation: Conversation;
  conversations: Conversation[];
  labels: Label[];
  /** Who is typing in it now. */
  typing?: string;
  messages: Message[];
  /** Earlier messages are not shown yet: `onEarlier` shows more. */
  earlier: boolean;
  onEarlier(): Promise<void>;
  pending: Pending[];
  onSend(text: string, replyTo?: string): void;
  onFiles(files: File[]): void;
  onRetry(p: Pending): void;
  onBack(): void;
  /** Something changed that the engine already stored: show it again. */
  onChanged(): void;
  onError(message: string): void;
  /** Whether a call is going on in it, and whether this device is in a call (any). */
  call: { goingOn: boolean; busy: boolean; start(): void };
}) {
  const [text, setText] = useState("");
  /** Whose safety number is on screen. */
  const [numberOf, setNumberOf] = useState<string>();
  /** Contacts whose identity key changed, the change not accepted: nothing goes to them. */
  const [changes, setChanges] = useState<string[]>([]);
  const [showMembers, setShowMembers] = useState(false);
  const [members, setMembers] = useState<string[]>([]);
  /** The message the composer answers, or the one of ours it edits. */
  const [replying, setReplying] = useState<Message>();
  const [editing, setEditing] = useState<Message>();
  const [dropping, setDropping] = useState(false);
  const composer = useRef<HTMLTextAreaElement>(null);
  const lastTyping = useRef(0);
  const { engine, conversation } = props;
  const peer = conversation.dm_peer;
  const end = useRef<HTMLDivElement>(null);
  const list = useRef<HTMLDivElement>(null);
  const newestId = props.messages.length ? props.messages[props.messages.length - 1].id : "";
  useEffect(() => end.current?.scrollIntoView?.({ block: "end" }), [newestId, props.pending.length]);
  // Scrolling back: earlier messages are added above, and what was on screen stays there.
  const fromBottom = useRef<number | undefined>(undefined);
  const showEarlier = () => {
    const box = list.current;
    if (box) fromBottom.current = box.scrollHeight - box.scrollTop;
    return props.onEarlier();
  };
  useLayoutEffect(() => {
    const box = list.current;
    if (box && fromBottom.current !== undefined) {
      box.scrollTop = box.scrollHeight - fromBottom.current;
      fromBottom.current = undefined;
    }
  }, [props.messages]);
  // The "Earlier messages" button loads more as soon as it scrolls into view.
  const earlierButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const button = earlierButton.current;
    if (!button || typeof IntersectionObserver === "undefined") return;
    const watch = new IntersectionObserver((seen) => {
      if (seen.some((s) => s.isIntersecting) && fromBottom.current === undefined) showEarlier();
    });
    watch.observe(button);
    return () => watch.disconnect();
  }, [props.earlier, props.messages]);
  /** The members of this conversation among them. */
  const changed = changes.filter((address) => members.includes(address));
  const checkIdentities = () =>
    engine.call<string[]>({ method: "identityChanges" }).then(setChanges, () => {});
  // A send refused for a changed key ends as a failed message: look again when one does.
  const failures = props.pending.filter((p) => p.failed).length;
  useEffect(() => {
    checkIdentities();
  }, [conversation.id, failures]);
  useEffect(() => {
    engine.call<string[]>({ method: "members", conversation: conversation.id }).then(setMembers, () => {});
    setReplying(undefined);
    setEditing(undefined);
  }, [conversation.id]);
  // What is on screen is read: a read receipt (the engine sends none when nothing is new, or
  // when the user turned them off).
  const newest = props.messages.length ? props.messages[props.messages.length - 1].seq : 0;
  useEffect(() => {
    if (newest > 0 && !conversation.left && !document.hidden) {
      engine.call({ method: "markRead", conversation: conversation.id }).catch(() => {});
    }
  }, [conversation.id, newest]);
  // Messages under a timer go when it runs out, on screen too.
  useEffect(() => {
    const soonest = Math.min(...props.messages.map((m) => m.expires_at ?? Infinity));
    if (!Number.isFinite(soonest)) return;
    const timer = setTimeout(async () => {
      if ((await engine.call<number>({ method: "eraseExpired" })) > 0) props.onChanged();
    }, Math.max(0, soonest - Date.now()) + 200);
    return () => clearTimeout(timer);
  }, [props.messages]);
  const act = async (call: Parameters<EngineClient["call"]>[0]) => {
    try {
      await engine.call(call);
      props.onChanged();
    } catch (e) {
      props.onError(errorText(e));
    }
  };
  const actions: MessageActions = {
    reply(m) {
      setEditing(undefined);
      setReplying(m);
      composer.current?.focus();
    },
    edit(m) {
      setReplying(undefined);
      setEditing(m);
      setText(m.text);
      composer.current?.focus();
    },
    remove(m) {
      act({ method: "deleteMessage", conversation: conversation.id, message: m.id });
    },
    react(m, emoji, remove) {
      act({ method: "react", conversation: conversation.id, message: m.id, emoji, remove });
    },
    forward(m, to) {
      act({ method: "forward", message: m.id, conversation: to });
    },
  };
  // Where a message may go: never out of a conversation whose label forbids it, never into
  // a less restrictive one (the engine checks again).
  const level = (c: Conversation) => c.label?.level ?? 0;
  const forwardTo = conversation.label?.no_forward
    ? []
    : props.conversations.filter((c) => c.id !== conversation.id && !c.left && level(c) >= level(conversation));
  const byId = useMemo(() => new Map(props.messages.map((m) => [m.id, m])), [props.messages]);
  const items = useMemo(() => {
    const out: preact.JSX.Element[] = [];
    let lastDay = "";
    for (const m of props.messages) {
      const d = day(when(m));
      if (d !== lastDay) {
        out.push(<p class="day" key={`day-${d}`}>{d}</p>);
        lastDay = d;
      }
      out.push(
        <MessageItem
          key={m.id}
          engine={engine}
          m={m}
          me={props.me}
          conversation={conversation}
          forwardTo={forwardTo}
          title={title}
          members={members}
          answered={m.reply_to ? byId.get(m.reply_to) : undefined}
          time={time(when(m))}
          actions={actions}
        />,
      );
    }
    return out;
  }, [props.messages, conversation, members, props.conversations]);
  const submit = (e: Event) => {
    e.preventDefault();
    const typed = text.trim();
    if (!typed) return;
    setText("");
    if (editing) {
      setEditing(undefined);
      act({ method: "edit", conversation: conversation.id, message: editing.id, text: typed });
      return;
    }
    setReplying(undefined);
    props.onSend(typed, replying?.id);
  };
  return (
    <section
      class={`conversation ${dropping ? "dropping" : ""}`}
      aria-label={title(props.conversation)}
      {...(conversation.left ? {} : dropTarget(props.onFiles, setDropping))}
    >
      <header>
        <button class="back" onClick={props.onBack} aria-label={t("Back to conversations")}>‹</button>
        <h2>{title(props.conversation)}</h2>
        {peer ? (
          <button onClick={() => setNumberOf(peer)}>{t("Safety number")}</button>
        ) : (
          <button onClick={() => setShowMembers(true)}>{t("Members")}</button>
        )}
        {conversation.label && <LabelTag label={conversation.label} />}
        {!conversation.left && (
          <>
            <button class="call-button" disabled={props.call.busy} onClick={props.call.start}>
              {props.call.busy ? t("In a call") : props.call.goingOn ? t("Join the call") : t("Call")}
            </button>
            <LabelPicker
              conversation={conversation}
              labels={props.labels}
              onChange={(name) => act({ method: "setLabel", conversation: conversation.id, name })}
            />
            <TimerPicker
              conversation={conversation}
              onChange={(seconds) => act({ method: "setTimer", conversation: conversation.id, seconds })}
            />
          </>
        )}
      </header>
      {showMembers && (
        <MembersDialog
          engine={props.engine}
          conversation={props.conversation.id}
          me={props.me.address}
          onClose={() => setShowMembers(false)}
        />
      )}
      {numberOf && (
        <SafetyNumberDialog
          engine={props.engine}
          address={numberOf}
          onClose={() => {
            setNumberOf(undefined);
            // Looking the number up is what notices a changed key.
            checkIdentities();
          }}
          onAccepted={checkIdentities}
        />
      )}
      {changed.map((address) => (
        <div class="identity-changed" role="alert" key={address}>
          <p>
            {t(
              "The identity key of {address} changed. Nothing is sent to this conversation until you compare the new safety number with them and accept it.",
              { address },
            )}
          </p>
          <button onClick={() => setNumberOf(address)}>
            {t("Compare safety numbers with {address}", { address })}
          </button>
        </div>
      ))}
      {dropping && <p class="drop-hint" role="status">{t("Drop files to send them")}</p>}
      {/* Focusable, so the keyboard scrolls it even when nothing in it takes the focus. */}
      <div class="messages" ref={list} role="region" aria-label={t("Messages")} tabIndex={0}>
        {props.earlier && (
          <button class="earlier" ref={earlierButton} onClick={showEarlier}>
            {t("Earlier messages")}
          </button>
        )}
        {items}
        {props.pending.map((p) => (
          <article key={`p${p.key}`} class="own pending" aria-label={t("{sender}, sending", { sender: props.me.address })}>
            <header><span class="sender">{props.me.address}</span></header>
            <p>{p.file ? `📎 ${p.file.name} ${fileSize(p.file.size)}` : p.text}</p>
            {p.file && !p.failed && (
              <progress
                value={p.progress ?? 0}
                max={1}
                aria-label={t("Uploading {name}", { name: p.file.name })}
              />
            )}
            {p.failed ? (
              <p class="failed">
                {t("Not sent: {error}", { error: p.failed })}{" "}
                <button onClick={() => props.onRetry(p)}>{t("Retry")}</button>
              </p>
            ) : (
              <p class="sending">{t("Sending…")}</p>
            )}
          </article>
        ))}
        <div ref={end} />
      </div>
      <p class="typing" role="status">
        {props.typing ? t("{sender} is typing…", { sender: props.typing }) : ""}
      </p>
      {(replying || editing) && (
        <p class="composing" role="status">
          {replying
            ? t("Replying to {sender}: {text}", { sender: replying.sender, text: replying.text })
            : t("Editing your message")}{" "}
          <button
            onClick={() => {
              if (editing) setText("");
              setReplying(undefined);
              setEditing(undefined);
            }}
          >
            {t("Cancel")}
          </button>
        </p>
      )}
      <form class="composer" onSubmit={submit}>
        <AttachButton onFiles={props.onFiles} disabled={conversation.left || !!editing || changed.length > 0} />
        <textarea
          ref={composer}
          aria-label={t("Message")}
          rows={1}
          value={text}
          onInput={(e) => {
            setText(e.currentTarget.value);
            // Members see that we type: one notice every few seconds at most, not per key.
            if (!editing && Date.now() - lastTyping.current > TYPING_EVERY_MS) {
              lastTyping.current = Date.now();
              engine.call({ method: "typing", conversation: conversation.id }).catch(() => {});
            }
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) submit(e);
          }}
        />
        <button type="submit" disabled={changed.length > 0}>
          {editing ? t("Save") : t("Send")}
        </button>
      </form>
    </section>
  );
}

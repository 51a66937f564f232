// The web app's screens (Preact). Everything the engine does happens in its Worker
// (client.ts); these components only ask and show.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { EngineClient, errorText, ownAccount } from "./client";
import { DevicesDialog, MembersDialog, SafetyNumberDialog } from "./devices";
import { AttachButton, dropTarget, fileSize } from "./files";
import { LabelPicker, LabelTag, MessageItem, TimerPicker, type MessageActions } from "./messages";
import { language, setLanguage, t, type Language } from "./i18n";
import type { Call, Conversation, Identity, Label, Message, Outcome, Policy, Registered } from "./protocol";

type Phase =
  | { kind: "starting" }
  | { kind: "elsewhere"; takeOver: () => void }
  | { kind: "lost" }
  | { kind: "register" }
  | { kind: "ready"; me: Identity };

/** Switches the app's language; every screen re-renders in the new one. */
let rerender: () => void = () => {};

function LanguagePicker() {
  return (
    <select
      aria-label={t("Language")}
      value={language()}
      onChange={(e) => {
        setLanguage(e.currentTarget.value as Language);
        rerender();
      }}
    >
      <option value="en">English</option>
      <option value="fr">Français</option>
    </select>
  );
}

export function App() {
  const [, setRevision] = useState(0);
  rerender = () => setRevision((r) => r + 1);
  const [phase, setPhase] = useState<Phase>({ kind: "starting" });
  const [engine, setEngine] = useState<EngineClient>();

  useEffect(() => {
    ownAccount(
      () => {
        const client = new EngineClient();
        setEngine(client);
        client
          .call<Identity | null>({ method: "open" })
          .then((me) => setPhase(me ? { kind: "ready", me } : { kind: "register" }))
          .catch(() => setPhase({ kind: "register" }));
      },
      (takeOver) => setPhase({ kind: "elsewhere", takeOver }),
      () => {
        engine?.stop();
        setPhase({ kind: "lost" });
      },
    );
  }, []);

  switch (phase.kind) {
    case "starting":
      return <p class="notice">{t("Starting Missive…")}</p>;
    case "elsewhere":
      return (
        <section class="notice">
          <p>{t("Missive is open in another tab.")}</p>
          <button onClick={() => { setPhase({ kind: "starting" }); phase.takeOver(); }}>
            {t("Use here")}
          </button>
        </section>
      );
    case "lost":
      return <p class="notice">{t("Missive is now open in another tab. Close this one.")}</p>;
    case "register":
      return <Register engine={engine!} onDone={(me) => setPhase({ kind: "ready", me })} />;
    case "ready":
      return <Home engine={engine!} me={phase.me} />;
  }
}

type Mode = "register" | "link" | "recover";

function Register({ engine, onDone }: { engine: EngineClient; onDone(me: Identity): void }) {
  const [mode, setMode] = useState<Mode>("register");
  const [server, setServer] = useState(location.origin);
  const [address, setAddress] = useState("");
  const [invite, setInvite] = useState("");
  const [code, setCode] = useState("");
  const [key, setKey] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [registered, setRegistered] = useState<Registered>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      if (mode === "register") {
        const me = await engine.call<Registered>({
          method: "register",
          server: server.trim(),
          address: address.trim(),
          invite: invite.trim() || undefined,
        });
        if (me.recoveryKey) setRegistered(me);
        else onDone(me);
      } else if (mode === "link") {
        onDone(await engine.call<Identity>({ method: "join", server: server.trim(), code: code.trim() }));
      } else {
        onDone(
          await engine.call<Identity>({
            method: "recover",
            server: server.trim(),
            address: address.trim(),
            key: key.trim(),
          }),
        );
      }
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  if (registered?.recoveryKey) {
    return <RecoveryKeyScreen recoveryKey={registered.recoveryKey} onDone={() => onDone(registered)} />;
  }
  const switchTo = (next: Mode) => () => {
    setMode(next);
    setError("");
  };
  const serverField = (
    <label>
      {t("Server")}
      <input value={server} onInput={(e) => setServer(e.currentTarget.value)} required />
    </label>
  );
  const addressField = (
    <label>
      {t("Address")}
      <input
        value={address}
        onInput={(e) => setAddress(e.currentTarget.value)}
        placeholder="name@ministry.gouv.fr"
        autocomplete="username"
        required
      />
    </label>
  );
  const errorLine = error && <p role="alert" class="error">{error}</p>;
  const others = (["register", "link", "recover"] as Mode[])
    .filter((m) => m !== mode)
    .map((m) => (
      <button key={m} class="link" onClick={switchTo(m)} disabled={busy}>
        {m === "register"
          ? t("Create a new account instead")
          : m === "link"
            ? t("Link to an existing account")
            : t("Recover an account (every device lost)")}
      </button>
    ));
  return (
    <main class="register">
      <h1>Missive</h1>
      <LanguagePicker />
      {mode === "link" && (
        <>
          <p>
            {t(
              "Use the account of another device: on it, choose “Link a new device” (or run {command}) and type the code it shows.",
            )
              .split("{command}")
              .flatMap((part, i) => (i === 0 ? [part] : [<code key={i}>missive link</code>, part]))}
          </p>
          <form onSubmit={submit}>
            {serverField}
            <label>
              {t("Link code")}
              <input
                value={code}
                onInput={(e) => setCode(e.currentTarget.value)}
                autocomplete="off"
                spellcheck={false}
                required
              />
            </label>
            {errorLine}
            <button type="submit" disabled={busy}>
              {busy ? t("Linking… (keep the other device open)") : t("Link this browser")}
            </button>
          </form>
        </>
      )}
      {mode === "register" && (
        <>
          <p>{t("Create your account on your organisation's server.")}</p>
          <form onSubmit={submit}>
            {serverField}
            {addressField}
            <label>
              {t("Invite code")}
              <input value={invite} onInput={(e) => setInvite(e.currentTarget.value)} />
            </label>
            {errorLine}
            <button type="submit" disabled={busy}>{busy ? t("Registering…") : t("Register")}</button>
          </form>
        </>
      )}
      {mode === "recover" && (
        <>
          <p>
            {t(
              "Lost every device? Type the recovery key you wrote down when you registered. Your other devices will be taken off your account.",
            )}
          </p>
          <form onSubmit={submit}>
            {serverField}
            {addressField}
            <label>
              {t("Recovery key")}
              <input
                value={key}
                onInput={(e) => setKey(e.currentTarget.value)}
                autocomplete="off"
                spellcheck={false}
                required
              />
            </label>
            {errorLine}
            <button type="submit" disabled={busy}>
              {busy ? t("Recovering…") : t("Recover account")}
            </button>
          </form>
        </>
      )}
      {others}
    </main>
  );
}

/** The recovery key, shown once after registering: written down (or printed) before going on. */
function RecoveryKeyScreen({ recoveryKey, onDone }: { recoveryKey: string; onDone(): void }) {
  const [kept, setKept] = useState(false);
  return (
    <main class="register recovery-key">
      <h1>{t("Your recovery key")}</h1>
      <p>
        {t(
          "If you lose every device, this key is the only way back into your account. Write it down or print it, and keep it somewhere safe. It will not be shown again.",
        )}
      </p>
      <p class="key" aria-label={t("Recovery key")}>
        <code>
          {/* Lines break between groups only. */}
          {recoveryKey.split("-").map((group, i, all) => (
            <span key={i}>{i < all.length - 1 ? `${group}-` : group}</span>
          ))}
        </code>
      </p>
      <button class="link" onClick={() => window.print()}>{t("Print")}</button>
      <label class="check">
        <input type="checkbox" checked={kept} onChange={(e) => setKept(e.currentTarget.checked)} />
        {t("I have written down my recovery key")}
      </label>
      <button onClick={onDone} disabled={!kept}>{t("Continue")}</button>
    </main>
  );
}

function title(c: Conversation): string {
  return c.name ?? c.dm_peer ?? t("Conversation {id}", { id: c.id.slice(0, 8) });
}

/** A system notification for a message from someone else, unless it is on screen already. */
function notify(m: Message, me: Identity, reading: boolean) {
  if (m.sender === me.address || m.notice || (reading && !document.hidden)) return;
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
  new Notification(m.sender, {
    body: m.unsupported ? t("A message this version cannot display (update Missive)") : preview(m),
    tag: m.conversation,
  });
}

/** How long "X is typing…" stays after their last notice, and how often we send ours. */
const TYPING_SHOWN_MS = 6000;
const TYPING_EVERY_MS = 4000;
/** Messages of a conversation shown at first, and added each time the user scrolls back. */
const PAGE = 50;

/** A message in a line: its text, or the name of the file it shares. */
function preview(m: Message): string {
  if (m.deleted) return t("This message was deleted");
  return m.file ? `📎 ${m.file.name}` : m.text;
}

/** A message not yet accepted by the server (`replyTo`: the message it answers; `file`: the
 *  file it sends, `progress` how much of it is uploaded, from 0 to 1). */
type Pending = {
  key: number;
  conversation: string;
  text: string;
  replyTo?: string;
  file?: File;
  progress?: number;
  failed?: string;
};

function Home({ engine, me }: { engine: EngineClient; me: Identity }) {
  const [conversations, setConversations] = useState<Conversation[]>([]);
  const [current, setCurrent] = useState<string>();
  const [messages, setMessages] = useState<Message[]>([]);
  const [unread, setUnread] = useState<Record<string, number>>({});
  const [last, setLast] = useState<Record<string, Message>>({});
  const [pending, setPending] = useState<Pending[]>([]);
  const [online, setOnline] = useState(true);
  const [creating, setCreating] = useState(false);
  const [filter, setFilter] = useState("");
  const [query, setQuery] = useState("");
  const [labels, setLabels] = useState<Label[]>([]);
  /** Who is typing where, until when (ms). */
  const [typing, setTyping] = useState<Record<string, { sender: string; until: number }>>({});
  const [found, setFound] = useState<Message[]>();
  const [alerts, setAlerts] = useState<string[]>([]);
  const [showDevices, setShowDevices] = useState(false);
  const currentRef = useRef<string | undefined>(undefined);
  currentRef.current = current;
  /** How many of the open conversation's newest messages are shown, and whether it has more. */
  const shown = useRef(PAGE);
  const [earlier, setEarlier] = useState(false);

  const load = async (conversation: string) => {
    const count = shown.current;
    const list = await engine.call<Message[]>({ method: "messages", conversation, last: count + 1 });
    if (conversation !== currentRef.current) return;
    setEarlier(list.length > count);
    setMessages(list.length > count ? list.slice(1) : list);
  };

  const refresh = async () => {
    const list = await engine.call<Conversation[]>({ method: "conversations" });
    setConversations(list);
    const open = currentRef.current;
    if (open) await load(open);
  };

  useEffect(() => {
    engine.onOutcomes = (outcomes: Outcome[]) => {
      for (const o of outcomes) {
        if (o.type === "message") {
          const m = o.message;
          notify(m, me, m.conversation === currentRef.current);
          // On screen at once; the refresh below brings the rest (receipts, changes).
          if (m.conversation === currentRef.current) {
            setMessages((ms) => (ms.some((x) => x.id === m.id) ? ms : [...ms, m]));
          }
          setLast((l) => ({ ...l, [m.conversation]: m }));
          if (m.conversation !== currentRef.current && !m.notice) {
            setUnread((u) => ({ ...u, [m.conversation]: (u[m.conversation] ?? 0) + 1 }));
          }
        } else if (o.type === "alert") {
          setAlerts((a) => [...a, o.detail]);
        } else if (o.type === "typing") {
          const until = Date.now() + TYPING_SHOWN_MS;
          setTyping((t) => ({ ...t, [o.conversation]: { sender: o.sender, until } }));
          setTimeout(() => setTyping((t) => ({ ...t })), TYPING_SHOWN_MS + 50);
          continue;
        }
      }
      if (outcomes.some((o) => o.type !== "typing")) refresh();
    };
    engine.onConnection = setOnline;
    refresh();
    engine.call<Policy>({ method: "policy" }).then((p) => setLabels(p.labels), () => {});
  }, [engine]);

  useEffect(() => {
    if (!current) return;
    setUnread((u) => ({ ...u, [current]: 0 }));
    shown.current = PAGE;
    load(current);
  }, [current]);

  const nextKey = useRef(1);
  /** Sends a text or a file; `retry` sends a failed one again (a file's upload resumes). */
  const send = async (item: Omit<Pending, "key" | "failed" | "progress">, retry?: number) => {
    const key = retry ?? nextKey.current++;
    const { conversation, text, replyTo, file } = item;
    const entry = { ...item, key, progress: file ? 0 : undefined };
    setPending((p) => [...p.filter((x) => x.key !== key), entry]);
    const call: Call = file
      ? { method: "sendFile", conversation, file }
      : replyTo
        ? { method: "reply", conversation, replyTo, text }
        : { method: "send", conversation, text };
    const progress = (done: number, total: number) =>
      setPending((p) => p.map((x) => (x.key === key ? { ...x, progress: done / total } : x)));
    try {
      const sent = await engine.call<Message>(call, file ? progress : undefined);
      setPending((p) => p.filter((x) => x.key !== key));
      setLast((l) => ({ ...l, [conversation]: sent }));
      await refresh();
    } catch (e) {
      setPending((p) => p.map((x) => (x.key === key ? { ...x, failed: errorText(e) } : x)));
    }
  };

  // Search in this device's messages, a moment after typing stops.
  useEffect(() => {
    const text = query.trim();
    if (!text) {
      setFound(undefined);
      return;
    }
    const timer = setTimeout(() => {
      engine.call<Message[]>({ method: "search", text }).then(setFound, () => setFound([]));
    }, 200);
    return () => clearTimeout(timer);
  }, [query]);

  const listed = conversations.filter((c) =>
    title(c).toLowerCase().includes(filter.trim().toLowerCase()),
  );
  const open = conversations.find((c) => c.id === current);

  return (
    <div class={`home ${current ? "reading" : ""}`}>
      <div class="top">
        <header>
          <span class="me">{me.address}</span>
          <LanguagePicker />
          <button class="devices-button" onClick={() => setShowDevices(true)}>{t("Devices")}</button>
          {!online && <span role="status" class="offline">{t("Offline: messages will be sent when the connection is back")}</span>}
        </header>
        {alerts.length > 0 && (
          <section role="alert" class="alerts" aria-label={t("Security alerts")}>
            {alerts.map((a, i) => <p key={i}>{a}</p>)}
          </section>
        )}
      </div>
      <nav aria-label={t("Conversations")}>
        <button onClick={() => setCreating(true)}>{t("New conversation")}</button>
        <input
          type="search"
          aria-label={t("Filter conversations")}
          placeholder={t("Filter")}
          value={filter}
          onInput={(e) => setFilter(e.currentTarget.value)}
        />
        <input
          type="search"
          aria-label={t("Search messages")}
          placeholder={t("Search messages")}
          value={query}
          onInput={(e) => setQuery(e.currentTarget.value)}
        />
        {found && (
          <section aria-label={t("Search results")} class="results">
            {found.length === 0 && <p class="hint">{t("No message matches.")}</p>}
            <ul>
              {found.map((m) => {
                const c = conversations.find((x) => x.id === m.conversation);
                return (
                  <li key={m.id}>
                    <button
                      onClick={() => {
                        setQuery("");
                        setCurrent(m.conversation);
                      }}
                    >
                      <span class="title">{c ? title(c) : m.conversation.slice(0, 8)}</span>
                      <span class="preview">
                        {m.sender}: {preview(m)}
                      </span>
                    </button>
                  </li>
                );
              })}
            </ul>
          </section>
        )}
        <ul>
          {listed.map((c) => (
            <li key={c.id}>
              <button
                class={c.id === current ? "current" : ""}
                aria-current={c.id === current ? "true" : undefined}
                onClick={() => setCurrent(c.id)}
              >
                <span class="title">{title(c)}{c.label && <> <LabelTag label={c.label} /></>}</span>
                {last[c.id] && !last[c.id].notice && (
                  <span class="preview">{preview(last[c.id])}</span>
                )}
                {(unread[c.id] ?? 0) > 0 && (
                  <span class="unread" aria-label={t("{n} unread", { n: unread[c.id] })}>{unread[c.id]}</span>
                )}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      <main>
        {open ? (
          <ConversationView
            engine={engine}
            me={me}
            conversation={open}
            conversations={conversations}
            labels={labels}
            typing={typing[open.id]?.until > Date.now() ? typing[open.id].sender : undefined}
            messages={messages}
            earlier={earlier}
            onEarlier={() => {
              shown.current += PAGE;
              return load(open.id);
            }}
            pending={pending.filter((p) => p.conversation === open.id)}
            onSend={(text, replyTo) => send({ conversation: open.id, text, replyTo })}
            onFiles={(files) => files.forEach((file) => send({ conversation: open.id, text: file.name, file }))}
            onRetry={(p) => send(p, p.key)}
            onChanged={refresh}
            onError={(e) => setAlerts((a) => [...a, e])}
            onBack={() => setCurrent(undefined)}
          />
        ) : (
          <p class="empty">{t("Choose a conversation, or start a new one.")}</p>
        )}
      </main>
      {showDevices && <DevicesDialog engine={engine} onClose={() => setShowDevices(false)} />}
      {creating && (
        <NewConversation
          engine={engine}
          onClose={() => setCreating(false)}
          onCreated={async (id) => {
            setCreating(false);
            await refresh();
            setCurrent(id);
          }}
        />
      )}
    </div>
  );
}

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

function ConversationView(props: {
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
}) {
  const [text, setText] = useState("");
  const [showNumber, setShowNumber] = useState(false);
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
          <button onClick={() => setShowNumber(true)}>{t("Safety number")}</button>
        ) : (
          <button onClick={() => setShowMembers(true)}>{t("Members")}</button>
        )}
        {conversation.label && <LabelTag label={conversation.label} />}
        {!conversation.left && (
          <>
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
      {showNumber && peer && (
        <SafetyNumberDialog engine={props.engine} address={peer} onClose={() => setShowNumber(false)} />
      )}
      {dropping && <p class="drop-hint" role="status">{t("Drop files to send them")}</p>}
      <div class="messages" ref={list}>
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
        <AttachButton onFiles={props.onFiles} disabled={conversation.left || !!editing} />
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
        <button type="submit">{editing ? t("Save") : t("Send")}</button>
      </form>
    </section>
  );
}

function NewConversation(props: {
  engine: EngineClient;
  onClose(): void;
  onCreated(id: string): void;
}) {
  const [members, setMembers] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => dialog.current?.showModal(), []);
  const submit = async (e: Event) => {
    e.preventDefault();
    const list = members.split(/[\s,;]+/).filter((m) => m);
    if (list.length === 0) {
      setError(t("Name at least one member."));
      return;
    }
    setBusy(true);
    setError("");
    try {
      props.onCreated(
        await props.engine.call<string>({
          method: "createConversation",
          name: name.trim() || undefined,
          members: list,
        }),
      );
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };
  return (
    <dialog ref={dialog} onClose={props.onClose} aria-label={t("New conversation")}>
      <form onSubmit={submit}>
        <h2>{t("New conversation")}</h2>
        <label>
          {t("Members")}
          <input value={members} onInput={(e) => setMembers(e.currentTarget.value)} placeholder="bob@ministry.gouv.fr, carol@…" />
        </label>
        <label>
          {t("Name")}
          <input value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        {error && <p role="alert" class="error">{error}</p>}
        <div class="actions">
          <button type="button" onClick={() => dialog.current?.close()}>{t("Cancel")}</button>
          <button type="submit" disabled={busy}>{busy ? t("Creating…") : t("Create")}</button>
        </div>
      </form>
    </dialog>
  );
}

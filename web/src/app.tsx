// The web app's screens (Preact). Everything the engine does happens in its Worker
// (client.ts); these components only ask and show.
import { useEffect, useRef, useState } from "preact/hooks";
import { EngineClient, errorText, ownAccount } from "./client";
import { CallPanel, IncomingCall, useCalls } from "./callview";
import { ConversationView, title, type Pending } from "./conversation";
import { DevicesDialog } from "./devices";
import { LabelTag } from "./messages";
import { QrScanner } from "./scan";
import { isAlert, plainAlert } from "./alerts";
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

/** What a link code's QR code holds before the code (missive_core::link::QR_PREFIX). */
const LINK_QR_PREFIX = "missive-link:";

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
  const [scanning, setScanning] = useState(false);
  const joinWith = async (linkCode: string) => {
    setBusy(true);
    setError("");
    try {
      onDone(await engine.call<Identity>({ method: "join", server: server.trim(), code: linkCode.trim() }));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    if (mode === "link") return joinWith(code);
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
              "Use the account of another device: on it, choose “Link a new device” (or run {command}), then scan the QR code it shows or type its code.",
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
          {scanning ? (
            <QrScanner
              engine={engine}
              accept={(text) => text.startsWith(LINK_QR_PREFIX)}
              onCode={(text) => {
                setScanning(false);
                const scanned = text.slice(LINK_QR_PREFIX.length);
                setCode(scanned);
                joinWith(scanned);
              }}
              onClose={() => setScanning(false)}
            />
          ) : (
            <button type="button" onClick={() => setScanning(true)} disabled={busy}>
              {t("Scan the QR code")}
            </button>
          )}
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


/** A system notification for a message from someone else, unless it is on screen already. */
function notify(m: Message, me: Identity, reading: boolean) {
  if (m.sender === me.address || m.notice || (reading && !document.hidden)) return;
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
  new Notification(m.sender, {
    body: m.unsupported ? t("A message this version cannot display (update Missive)") : preview(m),
    tag: m.conversation,
  });
}

/** How long "X is typing…" stays after their last notice. */
const TYPING_SHOWN_MS = 6000;
/** Messages of a conversation shown at first, and added each time the user scrolls back. */
const PAGE = 50;

/** A message in a line: its text, or the name of the file it shares. */
function preview(m: Message): string {
  if (m.deleted) return t("This message was deleted");
  return m.file ? `📎 ${m.file.name}` : m.text;
}


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
  const [alerts, setAlerts] = useState<{ code: string; detail: string }[]>([]);
  const [showDevices, setShowDevices] = useState(false);
  const currentRef = useRef<string | undefined>(undefined);
  currentRef.current = current;
  const calls = useCalls(engine, me, (detail) => setAlerts((a) => [...a, { code: "", detail }]));
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
          calls.onMessage(m);
          // On screen at once; the refresh below brings the rest (receipts, changes).
          if (m.conversation === currentRef.current) {
            setMessages((ms) => (ms.some((x) => x.id === m.id) ? ms : [...ms, m]));
          }
          setLast((l) => ({ ...l, [m.conversation]: m }));
          if (m.conversation !== currentRef.current && !m.notice) {
            setUnread((u) => ({ ...u, [m.conversation]: (u[m.conversation] ?? 0) + 1 }));
          }
        } else if (o.type === "alert") {
          setAlerts((a) => [...a, { code: o.code, detail: o.detail }]);
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
    engine.onCalls = calls.onCallsChanged;
    engine.onRefusal = (code, detail) => setAlerts((a) => [...a, { code, detail }]);
    refresh();
    calls.refreshOngoing();
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
  const nameOf = (id: string) => {
    const c = conversations.find((x) => x.id === id);
    return c ? title(c) : id.slice(0, 8);
  };

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
            {alerts.map((a, i) => (
              <div key={i}>
                <p>{plainAlert(a.code, a.detail)}</p>
                {isAlert(a.code) && (
                  <details>
                    <summary>{t("Details")}</summary>
                    {a.detail}
                  </details>
                )}
              </div>
            ))}
          </section>
        )}
        {calls.call && (
          <CallPanel
            call={calls.call}
            title={nameOf(calls.call.conversation)}
            onMute={calls.setMuted}
            onCamera={calls.setCamera}
            onHangUp={calls.hangUp}
          />
        )}
        {calls.ringing && !calls.call && (
          <IncomingCall
            ringing={calls.ringing}
            title={nameOf(calls.ringing.conversation)}
            onAccept={() => {
              const { conversation } = calls.ringing!;
              setCurrent(conversation);
              calls.start(conversation);
            }}
            onDecline={calls.decline}
          />
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
                {calls.ongoing.some((o) => o.conversation === c.id) && (
                  <span class="call-going-on">{t("Call going on")}</span>
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
            onError={(e) => setAlerts((a) => [...a, { code: "", detail: e }])}
            onBack={() => setCurrent(undefined)}
            call={{
              goingOn: calls.ongoing.some((c) => c.conversation === open.id),
              busy: !!calls.call,
              start: () => calls.start(open.id),
            }}
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

// The account's devices (list, link a new one, revoke one), its security alerts, the
// safety number with a contact, and a group's members. Every decision is the engine's; these dialogs ask and show.
import { useEffect, useRef, useState } from "preact/hooks";
import { EngineClient, errorText } from "./client";
import { t } from "./i18n";
import type { Device, Linked, SafetyNumber, StoredAlert } from "./protocol";

/** A modal dialog opened on mount; `onClose` when it closes (Escape, or a Close button). */
export function Modal(props: { label: string; onClose(): void; children: preact.ComponentChildren }) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => dialog.current?.showModal(), []);
  return (
    <dialog ref={dialog} onClose={props.onClose} aria-label={props.label}>
      {props.children}
      <div class="actions">
        <button type="button" onClick={() => dialog.current?.close()}>{t("Close")}</button>
      </div>
    </dialog>
  );
}

function short(id: string) {
  return id.slice(0, 8);
}

type LinkState =
  | { kind: "idle" }
  | { kind: "waiting"; code?: string; qrSvg?: string }
  | { kind: "done"; linked: Linked }
  | { kind: "failed"; error: string };

/** Asks for the right to show system notifications, while the browser has not been told. */
export function NotificationsButton() {
  const [permission, setPermission] = useState(
    typeof Notification === "undefined" ? "denied" : Notification.permission,
  );
  if (permission !== "default") return null;
  return (
    <button
      onClick={async () => setPermission(await Notification.requestPermission())}
    >
      {t("Enable notifications")}
    </button>
  );
}

/** A switch of this account's settings: the history backup (past messages come back with a
 *  recovery when it is on), read receipts (off: nobody learns what you read). */
function SettingSwitch({
  engine,
  method,
  label,
}: {
  engine: EngineClient;
  method: "historyBackup" | "readReceipts";
  label: string;
}) {
  const [on, setOn] = useState<boolean>();
  const [error, setError] = useState("");
  useEffect(() => {
    engine
      .call<boolean>({ method })
      .then(setOn)
      .catch((e) => setError(errorText(e)));
  }, []);
  const change = async (next: boolean) => {
    setError("");
    try {
      setOn(await engine.call<boolean>({ method, on: next }));
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <>
      <label class="check">
        <input
          type="checkbox"
          checked={on ?? false}
          disabled={on === undefined}
          onChange={(e) => change(e.currentTarget.checked)}
        />
        {label}
      </label>
      {error && <p role="alert" class="error">{error}</p>}
    </>
  );
}

export function DevicesDialog(props: { engine: EngineClient; onClose(): void }) {
  const { engine } = props;
  const [devices, setDevices] = useState<Device[]>();
  const [alerts, setAlerts] = useState<StoredAlert[]>([]);
  const [error, setError] = useState("");
  const [link, setLink] = useState<LinkState>({ kind: "idle" });
  const [busy, setBusy] = useState<string>();

  const load = async () => {
    try {
      setDevices(await engine.call<Device[]>({ method: "devices" }));
      setAlerts(await engine.call<StoredAlert[]>({ method: "alerts" }));
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => {
    load();
  }, []);

  /** A link given up by the user (its failure is no news). */
  const cancelled = useRef(false);
  const startLink = async () => {
    cancelled.current = false;
    setLink({ kind: "waiting" });
    engine.onLinkCode = (code, qrSvg) => setLink({ kind: "waiting", code, qrSvg });
    try {
      const linked = await engine.call<Linked>({ method: "link" });
      setLink({ kind: "done", linked });
      await load();
    } catch (e) {
      setLink(cancelled.current ? { kind: "idle" } : { kind: "failed", error: errorText(e) });
    }
  };
  const cancelLink = () => {
    cancelled.current = true;
    engine.call({ method: "cancelLink" }).catch(() => {});
  };
  // Closing the dialog gives up a link no device has used yet.
  const waiting = useRef(false);
  waiting.current = link.kind === "waiting";
  useEffect(
    () => () => {
      if (waiting.current) cancelLink();
    },
    [],
  );

  const revoke = async (id: string) => {
    if (!confirm(t("Revoke device {id}? It will read nothing sent from now on.", { id: short(id) }))) return;
    setBusy(id);
    setError("");
    try {
      await engine.call<number>({ method: "revokeDevice", deviceId: id });
      await load();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(undefined);
    }
  };

  const version = devices?.[0]?.list_version ?? 0;
  return (
    <Modal label={t("Devices")} onClose={props.onClose}>
      <h2>{t("Devices")}</h2>
      {devices === undefined && !error && <p>{t("Loading…")}</p>}
      {devices && (
        <>
          <p class="hint">
            {t(
              "Your signed device list (version {version}) names the devices other people's apps add to your conversations.",
              { version },
            )}
          </p>
          <ul class="devices">
            {devices.map((d) => (
              <li key={d.id}>
                <span class="device-id">{short(d.id)}</span>
                {d.current && <span class="tag">{t("this device")}</span>}
                {!d.certified && <span class="tag bad">{t("not certified by you: never used")}</span>}
                {d.certified && !d.listed && <span class="tag">{t("not on your device list")}</span>}
                {!d.current && (
                  <button
                    onClick={() => revoke(d.id)}
                    disabled={busy !== undefined}
                    aria-label={t("Revoke device {id}", { id: short(d.id) })}
                  >
                    {busy === d.id ? t("Revoking…") : t("Revoke")}
                  </button>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
      {error && <p role="alert" class="error">{error}</p>}
      <section aria-label={t("Link a device")}>
        {link.kind === "idle" && (
          <button onClick={startLink}>{t("Link a new device")}</button>
        )}
        {link.kind === "waiting" && (
          <div class="link-code">
            {link.code ? (
              <>
                <p>{t("On the new device, choose “Link to an existing account” and type:")}</p>
                <p class="code" aria-label={t("Link code")}>{link.code}</p>
                {link.qrSvg && (
                  <div
                    class="qr"
                    role="img"
                    aria-label={t("QR code of the link code")}
                    dangerouslySetInnerHTML={{ __html: link.qrSvg }}
                  />
                )}
                <p role="status">{t("Waiting for the new device…")}</p>
                <button onClick={cancelLink}>{t("Cancel the link")}</button>
              </>
            ) : (
              <p role="status">{t("Preparing a link code…")}</p>
            )}
          </div>
        )}
        {link.kind === "done" && (
          <p role="status">
            {t(
              "Linked device {id}: added to {conversations} conversations, {messages} messages handed over.",
              {
                id: short(link.linked.device_id),
                conversations: link.linked.conversations,
                messages: link.linked.messages,
              },
            )}
          </p>
        )}
        {link.kind === "failed" && <p role="alert" class="error">{t("Not linked: {error}", { error: link.error })}</p>}
      </section>
      <NotificationsButton />
      <SettingSwitch engine={engine} method="historyBackup" label={t("Back up message history with the recovery key")} />
      <SettingSwitch engine={engine} method="readReceipts" label={t("Send read receipts")} />
      <section aria-label={t("Security alerts")}>
        <h3>{t("Security alerts")}</h3>
        {alerts.length === 0 ? (
          <p>{t("None: nothing was refused.")}</p>
        ) : (
          <ul class="alert-list">
            {alerts.map((a, i) => (
              <li key={i}>
                <time>{new Date(a.at).toLocaleString()}</time> {a.detail}
              </li>
            ))}
          </ul>
        )}
      </section>
    </Modal>
  );
}

/** The safety number with a contact, to compare and mark verified; when their identity key
 *  changed, the new key's number, to compare before accepting it (`onAccepted` follows). */
export function SafetyNumberDialog(props: {
  engine: EngineClient;
  address: string;
  onClose(): void;
  onAccepted?(): void;
}) {
  const [number, setNumber] = useState<SafetyNumber>();
  const [error, setError] = useState("");
  const load = () =>
    props.engine
      .call<SafetyNumber>({ method: "safetyNumber", address: props.address })
      .then(setNumber)
      .catch((e) => setError(errorText(e)));
  useEffect(() => {
    load();
  }, [props.address]);
  const verify = async () => {
    try {
      await props.engine.call({ method: "markVerified", address: props.address });
      setNumber((n) => n && { ...n, verified: true });
    } catch (e) {
      setError(errorText(e));
    }
  };
  const accept = async () => {
    try {
      await props.engine.call({ method: "acceptNewKey", address: props.address });
      await load();
      props.onAccepted?.();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <Modal label={t("Safety number")} onClose={props.onClose}>
      <h2>{t("Safety number with {address}", { address: props.address })}</h2>
      {number && (
        <>
          {number.changed ? (
            <p role="alert" class="warning">
              {t(
                "The identity key of {address} changed: this is the safety number of the new key. Accept it only if {address} shows the same digits, in person or on a call you trust. A key you did not expect may mean that someone is trying to read your messages.",
                { address: props.address },
              )}
            </p>
          ) : (
            <p>{t("Compare it with theirs, in person or on a call you trust: it is the same on both sides.")}</p>
          )}
          <p class="code" aria-label={t("Safety number digits")}>{number.digits}</p>
          <div
            class="qr"
            role="img"
            aria-label={t("QR code of the safety number")}
            dangerouslySetInnerHTML={{ __html: number.qr_svg }}
          />
          {number.changed ? (
            <button onClick={accept}>{t("Accept the new key")}</button>
          ) : number.verified ? (
            <p role="status" class="verified">{t("Verified")}</p>
          ) : (
            <button onClick={verify}>{t("Mark as verified")}</button>
          )}
        </>
      )}
      {error && <p role="alert" class="error">{error}</p>}
    </Modal>
  );
}

export function MembersDialog(props: {
  engine: EngineClient;
  conversation: string;
  me: string;
  onClose(): void;
}) {
  const { engine, conversation } = props;
  const [members, setMembers] = useState<string[]>();
  const [adding, setAdding] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const load = async () => {
    try {
      setMembers(await engine.call<string[]>({ method: "members", conversation }));
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => {
    load();
  }, [conversation]);
  const change = async (call: () => Promise<unknown>) => {
    setBusy(true);
    setError("");
    try {
      await call();
      await load();
      return true;
    } catch (e) {
      setError(errorText(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  const add = async (e: Event) => {
    e.preventDefault();
    const users = adding.split(/[\s,;]+/).filter((u) => u);
    if (users.length === 0) return;
    if (await change(() => engine.call({ method: "addMembers", conversation, users }))) setAdding("");
  };
  const remove = (user: string) => {
    if (!confirm(t("Remove {user}? They will read nothing sent from now on.", { user }))) return;
    change(() => engine.call({ method: "removeMembers", conversation, users: [user] }));
  };
  return (
    <Modal label={t("Members")} onClose={props.onClose}>
      <h2>{t("Members")}</h2>
      {members === undefined && !error && <p>{t("Loading…")}</p>}
      {members && (
        <ul class="devices">
          {members.map((m) => (
            <li key={m}>
              <span>{m}</span>
              {m === props.me ? (
                <span class="tag">{t("you")}</span>
              ) : (
                <button onClick={() => remove(m)} disabled={busy} aria-label={t("Remove {user}", { user: m })}>
                  {t("Remove")}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <form onSubmit={add}>
        <label>
          {t("Add members")}
          <input
            value={adding}
            onInput={(e) => setAdding(e.currentTarget.value)}
            placeholder="dave@ministry.gouv.fr"
          />
        </label>
        <button type="submit" disabled={busy}>{busy ? t("Working…") : t("Add")}</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
    </Modal>
  );
}

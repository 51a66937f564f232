// The account's devices (list, link a new one, revoke one), its security alerts, the
// safety number with a contact, and a group's members. Every decision is the engine's; these dialogs ask and show.
import { useEffect, useRef, useState } from "preact/hooks";
import { EngineClient, errorText } from "./client";
import type { Device, Linked, SafetyNumber, StoredAlert } from "./protocol";

/** A modal dialog opened on mount; `onClose` when it closes (Escape, or a Close button). */
export function Modal(props: { label: string; onClose(): void; children: preact.ComponentChildren }) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => dialog.current?.showModal(), []);
  return (
    <dialog ref={dialog} onClose={props.onClose} aria-label={props.label}>
      {props.children}
      <div class="actions">
        <button type="button" onClick={() => dialog.current?.close()}>Close</button>
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

  const startLink = async () => {
    setLink({ kind: "waiting" });
    engine.onLinkCode = (code, qrSvg) => setLink({ kind: "waiting", code, qrSvg });
    try {
      const linked = await engine.call<Linked>({ method: "link" });
      setLink({ kind: "done", linked });
      await load();
    } catch (e) {
      setLink({ kind: "failed", error: errorText(e) });
    }
  };

  const revoke = async (id: string) => {
    if (!confirm(`Revoke device ${short(id)}? It will read nothing sent from now on.`)) return;
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
    <Modal label="Devices" onClose={props.onClose}>
      <h2>Devices</h2>
      {devices === undefined && !error && <p>Loading…</p>}
      {devices && (
        <>
          <p class="hint">
            Your signed device list (version {version}) names the devices other people's apps
            add to your conversations.
          </p>
          <ul class="devices">
            {devices.map((d) => (
              <li key={d.id}>
                <span class="device-id">{short(d.id)}</span>
                {d.current && <span class="tag">this device</span>}
                {!d.certified && <span class="tag bad">not certified by you: never used</span>}
                {d.certified && !d.listed && <span class="tag">not on your device list</span>}
                {!d.current && (
                  <button
                    onClick={() => revoke(d.id)}
                    disabled={busy !== undefined}
                    aria-label={`Revoke device ${short(d.id)}`}
                  >
                    {busy === d.id ? "Revoking…" : "Revoke"}
                  </button>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
      {error && <p role="alert" class="error">{error}</p>}
      <section aria-label="Link a device">
        {link.kind === "idle" && (
          <button onClick={startLink}>Link a new device</button>
        )}
        {link.kind === "waiting" && (
          <div class="link-code">
            {link.code ? (
              <>
                <p>On the new device, choose “Link to an existing account” and type:</p>
                <p class="code" aria-label="Link code">{link.code}</p>
                {link.qrSvg && (
                  <div
                    class="qr"
                    role="img"
                    aria-label="QR code of the link code"
                    dangerouslySetInnerHTML={{ __html: link.qrSvg }}
                  />
                )}
                <p role="status">Waiting for the new device…</p>
              </>
            ) : (
              <p role="status">Preparing a link code…</p>
            )}
          </div>
        )}
        {link.kind === "done" && (
          <p role="status">
            Linked device {short(link.linked.device_id)}: added to {link.linked.conversations}{" "}
            conversations, {link.linked.messages} messages handed over.
          </p>
        )}
        {link.kind === "failed" && <p role="alert" class="error">Not linked: {link.error}</p>}
      </section>
      <section aria-label="Security alerts">
        <h3>Security alerts</h3>
        {alerts.length === 0 ? (
          <p>None: nothing was refused.</p>
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

export function SafetyNumberDialog(props: { engine: EngineClient; address: string; onClose(): void }) {
  const [number, setNumber] = useState<SafetyNumber>();
  const [error, setError] = useState("");
  useEffect(() => {
    props.engine
      .call<SafetyNumber>({ method: "safetyNumber", address: props.address })
      .then(setNumber)
      .catch((e) => setError(errorText(e)));
  }, [props.address]);
  const verify = async () => {
    try {
      await props.engine.call({ method: "markVerified", address: props.address });
      setNumber((n) => n && { ...n, verified: true });
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <Modal label="Safety number" onClose={props.onClose}>
      <h2>Safety number with {props.address}</h2>
      {number && (
        <>
          <p>Compare it with theirs, in person or on a call you trust: it is the same on both sides.</p>
          <p class="code" aria-label="Safety number digits">{number.digits}</p>
          <div
            class="qr"
            role="img"
            aria-label="QR code of the safety number"
            dangerouslySetInnerHTML={{ __html: number.qr_svg }}
          />
          {number.verified ? (
            <p role="status" class="verified">Verified</p>
          ) : (
            <button onClick={verify}>Mark as verified</button>
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
    if (!confirm(`Remove ${user}? They will read nothing sent from now on.`)) return;
    change(() => engine.call({ method: "removeMembers", conversation, users: [user] }));
  };
  return (
    <Modal label="Members" onClose={props.onClose}>
      <h2>Members</h2>
      {members === undefined && !error && <p>Loading…</p>}
      {members && (
        <ul class="devices">
          {members.map((m) => (
            <li key={m}>
              <span>{m}</span>
              {m === props.me ? (
                <span class="tag">you</span>
              ) : (
                <button onClick={() => remove(m)} disabled={busy} aria-label={`Remove ${m}`}>
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <form onSubmit={add}>
        <label>
          Add members
          <input
            value={adding}
            onInput={(e) => setAdding(e.currentTarget.value)}
            placeholder="dave@ministry.gouv.fr"
          />
        </label>
        <button type="submit" disabled={busy}>{busy ? "Working…" : "Add"}</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
    </Modal>
  );
}

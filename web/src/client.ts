// The app's side of the engine Worker: calls as promises, pushed news as callbacks. One tab
// owns the account at a time (Web Locks): the browser's storage has one writer.
import { isAlert, plainAlert } from "./alerts";
import type { Call, EngineError, Outcome, Reply, Request, TransformSide } from "./protocol";

export class EngineClient {
  private worker: Worker;
  private next = 1;
  private waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private progress = new Map<number, (done: number, total: number) => void>();
  private outcomesHandler?: (outcomes: Outcome[]) => void;
  /** Outcomes pushed before anyone listened (the first sync after opening runs while the
   *  screens mount): kept, and handed over when a handler is set. Alerts would be lost else. */
  private early: Outcome[][] = [];
  set onOutcomes(handler: (outcomes: Outcome[]) => void) {
    this.outcomesHandler = handler;
    for (const outcomes of this.early.splice(0)) handler(outcomes);
  }
  onConnection: (online: boolean) => void = () => {};
  /** A call the engine refused for security's sake (an alert's code): whatever screen made
   *  the call shows its error, and the app's alerts list shows it in words too. */
  onRefusal: (code: string, detail: string) => void = () => {};
  /** The code (and its QR code) of a link in progress. */
  onLinkCode: (code: string, qrSvg: string) => void = () => {};
  /** The call of these conversations changed: someone joined or left, or it ended. */
  onCalls: (conversations: string[]) => void = () => {};

  constructor() {
    this.worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    this.worker.onmessage = ({ data }: MessageEvent<Reply>) => {
      if ("event" in data) {
        if (data.event === "outcomes") {
          if (this.outcomesHandler) this.outcomesHandler(data.outcomes);
          else this.early.push(data.outcomes);
        }
        else if (data.event === "progress") this.progress.get(data.id)?.(data.done, data.total);
        else if (data.event === "linkCode") this.onLinkCode(data.code, data.qrSvg);
        else if (data.event === "calls") this.onCalls(data.conversations);
        else this.onConnection(data.online);
        return;
      }
      const waiter = this.waiting.get(data.id);
      this.waiting.delete(data.id);
      this.progress.delete(data.id);
      if (!waiter) return;
      if (data.ok) waiter.resolve(data.value);
      else {
        if (isAlert(data.error.code)) this.onRefusal(data.error.code, data.error.message);
        waiter.reject(Object.assign(new Error(data.error.message), { code: data.error.code }));
      }
    };
  }

  /** Asks the engine; `onProgress` hears how far a file transfer is. */
  call<T>(call: Call, onProgress?: (done: number, total: number) => void): Promise<T> {
    const id = this.next++;
    if (onProgress) this.progress.set(id, onProgress);
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, call } satisfies Request);
    });
  }

  /** A call's frame transform that runs in the engine's Worker, beside the keys (see
   *  worker.ts): `send` seals our frames, `receive` opens a slot's. */
  transform(options: TransformSide): RTCRtpScriptTransform {
    return new RTCRtpScriptTransform(this.worker, options);
  }

  stop() {
    this.worker.terminate();
  }
}

/** What went wrong, for the user: a security refusal in plain words (its technical detail is
 *  in the alerts list), anything else as the engine says it. */
export function errorText(e: unknown): string {
  const { code, message } = e as Partial<EngineError>;
  if (code && message && isAlert(code)) return plainAlert(code, message);
  return message ?? String(e);
}

/** Runs `owner` while this tab holds the account's lock; `elsewhere` is called when another
 *  tab holds it (call the returned function to take it over), `lost` when another tab took it. */
export function ownAccount(
  owner: () => void,
  elsewhere: (takeOver: () => void) => void,
  lost: () => void,
) {
  const name = "missive-account";
  const hold = () => new Promise<void>(() => {});
  navigator.locks
    .request(name, { ifAvailable: true }, async (lock) => {
      if (!lock) {
        elsewhere(() => {
          navigator.locks
            .request(name, { steal: true }, async () => {
              owner();
              await hold();
            })
            .catch(lost);
        });
        return;
      }
      owner();
      await hold();
    })
    .catch(lost);
}

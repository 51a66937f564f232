// Where the engine keeps the account in a browser: IndexedDB, written in durable ("strict")
// transactions. The engine (crates/web) hands over numbered journal entries and, now and then,
// a snapshot that replaces the entries it covers; see crates/core/src/journal.rs.
import type { EngineStorage } from "missive-engine";

const STORES = ["journal", "snapshot"];

type Snapshot = { seq: number; bytes: Uint8Array };

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("the storage transaction was aborted"));
  });
}

/** Opens (creating if needed) the account storage named `name` of this browser profile. */
export async function openStorage(name = "missive"): Promise<EngineStorage & { close(): void }> {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    for (const store of STORES) open.result.createObjectStore(store);
  };
  const db = await request(open);
  return {
    async load() {
      const tx = db.transaction(STORES, "readonly");
      const journal = tx.objectStore("journal");
      const [keys, values, snapshot] = await Promise.all([
        request(journal.getAllKeys()),
        request(journal.getAll()),
        request(tx.objectStore("snapshot").get("latest")),
      ]);
      return {
        snapshot: (snapshot as Snapshot | undefined) ?? null,
        entries: keys.map((seq, i) => [seq as number, values[i] as Uint8Array]),
      };
    },
    // Resolves once the browser reports entries and snapshot on disk, together.
    write(entries: [number, Uint8Array][], snapshot: Snapshot | null) {
      const tx = db.transaction(STORES, "readwrite", { durability: "strict" });
      const journal = tx.objectStore("journal");
      for (const [seq, bytes] of entries) journal.put(bytes, seq);
      if (snapshot) {
        tx.objectStore("snapshot").put(snapshot, "latest");
        journal.delete(IDBKeyRange.upperBound(snapshot.seq));
      }
      return done(tx);
    },
    close() {
      db.close();
    },
  };
}

// Files in a conversation: received ones shown (images previewed, texts read) or saved, as
// far as the conversation's label allows, and the picker that sends them. The engine
// downloads, opens and checks a file and hands back its bytes only once all of them are
// authentic; nothing here decides who may read what.
import { useEffect, useState } from "preact/hooks";
import type { EngineClient } from "./client";
import { errorText } from "./client";
import { t } from "./i18n";
import type { Label, Message } from "./protocol";

/** Shown in the page as images: never a type that can run script (no SVG). */
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
/** Read as text in the page. */
const TEXT_TYPES = ["text/plain", "text/csv", "application/json"];
/** Images up to this size are fetched and previewed as soon as they are on screen. */
const PREVIEW_MAX = 5 << 20;

/** Files already opened in this tab, by file id: fetched once, shown and saved from memory. */
const opened = new Map<string, Promise<Blob>>();

/** A size for people: "930 B", "12 KB", "3.4 MB". */
export function fileSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let n = bytes / 1000;
  let unit = 0;
  while (n >= 1000 && unit < units.length - 1) {
    n /= 1000;
    unit++;
  }
  return `${n.toLocaleString(undefined, { maximumFractionDigits: n < 10 ? 1 : 0 })} ${units[unit]}`;
}

/** The file message `m` shared, from the engine (or from this tab's memory). */
function open(engine: EngineClient, m: Message, onProgress: (share: number) => void): Promise<Blob> {
  const id = m.file!.id;
  let blob = opened.get(id);
  if (!blob) {
    blob = engine.call<Blob>({ method: "downloadFile", message: m.id }, (done, total) => onProgress(done / total));
    opened.set(id, blob);
    // A failure is not kept: the next attempt downloads again (and resumes nothing it
    // did not check).
    blob.catch(() => opened.delete(id));
  }
  return blob;
}

/** Saves bytes under `name` through the browser's own download. */
function save(blob: Blob, name: string) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

/** A received (or sent) file in a message. */
export function FileBody(props: { engine: EngineClient; m: Message; label?: Label }) {
  const { engine, m } = props;
  const file = m.file!;
  const rule = props.label?.downloads ?? "allowed";
  const viewable = rule === "allowed" || rule === "in_app";
  const image = IMAGE_TYPES.includes(file.media_type);
  const text = TEXT_TYPES.includes(file.media_type);
  const [preview, setPreview] = useState<string>();
  const [reading, setReading] = useState<string>();
  const [progress, setProgress] = useState<number>();
  const [error, setError] = useState<string>();

  /** The file, downloaded and checked by the engine (once per tab), with its progress shown. */
  const load = async () => {
    setError(undefined);
    setProgress(0);
    try {
      return await open(engine, m, setProgress);
    } catch (e) {
      setError(errorText(e));
      return undefined;
    } finally {
      setProgress(undefined);
    }
  };
  const showImage = async () => {
    const blob = await load();
    // Shown under its image type only now that the engine checked every byte of it.
    if (blob) setPreview(URL.createObjectURL(blob.slice(0, blob.size, file.media_type)));
  };
  useEffect(() => {
    if (image && viewable && file.size <= PREVIEW_MAX) showImage();
  }, [file.id]);
  useEffect(() => () => preview && URL.revokeObjectURL(preview), [preview]);

  return (
    <div class="file">
      {preview && <img class="preview" src={preview} alt={file.name} />}
      <p>
        <span class="file-name">📎 {file.name}</span> <span class="file-size">{fileSize(file.size)}</span>
      </p>
      {progress !== undefined && (
        <progress value={progress} max={1} aria-label={t("Downloading {name}", { name: file.name })} />
      )}
      {error && <p class="failed">{t("Could not open the file: {error}", { error })}</p>}
      {reading !== undefined && (
        <pre class="file-text" tabIndex={0} aria-label={file.name}>{reading}</pre>
      )}
      <div class="file-actions">
        {rule === "allowed" && (
          <button
            aria-label={t("Download {name}", { name: file.name })}
            onClick={async () => {
              const blob = await load();
              if (blob) save(blob, file.name);
            }}
          >
            {t("Download")}
          </button>
        )}
        {viewable && image && !preview && (
          <button onClick={showImage}>{t("Show image")}</button>
        )}
        {viewable && text && reading === undefined && (
          <button
            onClick={async () => {
              const blob = await load();
              if (blob) setReading(await blob.text());
            }}
          >
            {t("Read")}
          </button>
        )}
      </div>
      {rule === "in_app" && <p class="hint">{t("Files of this conversation can be viewed in the app only.")}</p>}
      {!viewable && <p class="hint">{t("Files of this conversation cannot be opened.")}</p>}
    </div>
  );
}

/** The composer's file picker: each chosen file is sent on its own. */
export function AttachButton(props: { onFiles(files: File[]): void; disabled?: boolean }) {
  return (
    <label class="attach" title={t("Attach file")}>
      <span aria-hidden="true">📎</span>
      <input
        class="visually-hidden"
        type="file"
        multiple
        disabled={props.disabled}
        aria-label={t("Attach file")}
        onChange={(e) => {
          const input = e.currentTarget;
          const files = Array.from(input.files ?? []);
          input.value = "";
          if (files.length) props.onFiles(files);
        }}
      />
    </label>
  );
}

/** Files dropped on an element: `onDragOver` and `onDrop` for it. */
export function dropTarget(onFiles: (files: File[]) => void, setOver: (over: boolean) => void) {
  return {
    onDragOver(e: DragEvent) {
      if (!e.dataTransfer?.types.includes("Files")) return;
      e.preventDefault();
      setOver(true);
    },
    onDragLeave() {
      setOver(false);
    },
    onDrop(e: DragEvent) {
      setOver(false);
      const files = Array.from(e.dataTransfer?.files ?? []);
      if (!files.length) return;
      e.preventDefault();
      onFiles(files);
    },
  };
}

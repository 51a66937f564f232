// Scanning a link code's QR code with the camera: frames drawn on a canvas a few times a
// second and handed to the engine (qr.rs), which reads them; no QR library in the page.
import { useEffect, useRef, useState } from "preact/hooks";
import type { EngineClient } from "./client";
import { t } from "./i18n";

/** Frames read per second: enough to feel instant, little enough to leave the engine idle. */
const FRAMES_PER_SECOND = 5;
/** The widest frame handed to the engine (a larger camera picture is scaled down). */
const FRAME_WIDTH = 640;

/** The camera's picture, until a QR code that `accept` takes is in it (its text goes to
 *  `onCode`). Tells in words when there is no camera or no permission to use it. */
export function QrScanner(props: {
  engine: EngineClient;
  accept(text: string): boolean;
  onCode(text: string): void;
  onClose(): void;
}) {
  const video = useRef<HTMLVideoElement>(null);
  const [error, setError] = useState("");
  const [seen, setSeen] = useState(false);
  useEffect(() => {
    let stream: MediaStream | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const next = () => {
      if (!stopped) timer = setTimeout(read, 1000 / FRAMES_PER_SECOND);
    };
    const read = async () => {
      const v = video.current;
      if (!v || !context || v.videoWidth === 0) return next();
      const scale = Math.min(1, FRAME_WIDTH / v.videoWidth);
      canvas.width = Math.round(v.videoWidth * scale);
      canvas.height = Math.round(v.videoHeight * scale);
      context.drawImage(v, 0, 0, canvas.width, canvas.height);
      const frame = context.getImageData(0, 0, canvas.width, canvas.height);
      try {
        const text = await props.engine.call<string | undefined>({
          method: "scanQr",
          width: frame.width,
          height: frame.height,
          rgba: new Uint8Array(frame.data.buffer),
        });
        if (text !== undefined && text !== null) {
          if (props.accept(text)) {
            stopped = true;
            props.onCode(text);
            return;
          }
          setSeen(true);
        }
      } catch (e) {
        setError(String((e as Error).message ?? e));
      }
      next();
    };
    (async () => {
      if (!navigator.mediaDevices?.getUserMedia) {
        setError(t("This browser gives no access to a camera here: type the code instead."));
        return;
      }
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          video: { facingMode: "environment" },
          audio: false,
        });
      } catch (e) {
        const denied = (e as DOMException).name === "NotAllowedError";
        setError(
          denied
            ? t("The camera may not be used: allow it in the browser's settings, or type the code instead.")
            : t("No camera was found: type the code instead."),
        );
        return;
      }
      if (stopped) {
        stream.getTracks().forEach((track) => track.stop());
        return;
      }
      const v = video.current;
      if (v) {
        v.srcObject = stream;
        await v.play().catch(() => {});
      }
      next();
    })();
    return () => {
      stopped = true;
      clearTimeout(timer);
      stream?.getTracks().forEach((track) => track.stop());
    };
  }, []);
  return (
    <section class="scanner" aria-label={t("Scan the QR code")}>
      {error ? (
        <p role="alert" class="error">{error}</p>
      ) : (
        <>
          <video ref={video} muted playsInline aria-label={t("Camera")} />
          <p role="status">
            {seen
              ? t("This QR code is not a Missive link code.")
              : t("Point the camera at the QR code the other device shows.")}
          </p>
        </>
      )}
      <button type="button" onClick={props.onClose}>{t("Stop scanning")}</button>
    </section>
  );
}

// engine.html: the engine on the page's own thread, without the app, for scripts and the
// engine's browser tests (web/tests/engine.test.mjs). The app itself runs it in a Worker.
import init, { Engine } from "missive-engine";
import { openStorage } from "./storage";

declare global {
  interface Window {
    missive: { Engine: typeof Engine; openStorage: typeof openStorage };
  }
}

const status = document.getElementById("status")!;
try {
  await init();
  window.missive = { Engine, openStorage };
  status.textContent = "Missive's engine is loaded.";
  document.documentElement.dataset.engine = "ready";
} catch (e) {
  status.textContent = `Missive could not start in this browser: ${(e as Error).message}`;
  document.documentElement.dataset.engine = "failed";
  throw e;
}

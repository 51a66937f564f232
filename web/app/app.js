// Loads Missive's engine (Rust compiled to WebAssembly, built into pkg/ by `cargo xtask web`)
// and hands it to the page with the browser storage it keeps the account in. The screens of
// the web app build on `window.missive`.
import init, { Engine } from "./pkg/missive_web.js";
import { openStorage } from "./storage.js";

const status = document.getElementById("status");
try {
  await init();
  window.missive = { Engine, openStorage };
  status.textContent = "Missive's engine is loaded.";
  document.documentElement.dataset.engine = "ready";
} catch (e) {
  status.textContent = `Missive could not start in this browser: ${e.message}`;
  document.documentElement.dataset.engine = "failed";
  throw e;
}

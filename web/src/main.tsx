// The web app's entry: the app (which takes the account's lock and starts the engine's
// Worker), and the service worker that keeps the app shell for offline starts.
import { render } from "preact";
import { App } from "./app";

render(<App />, document.getElementById("root")!);

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(() => {
    // Without it the app works; it only will not open offline.
  });
}

// The web app's service worker: keeps the app shell (pages, scripts, the engine) so that
// Missive opens without a network, and always tries the network first so that a new release
// is used as soon as it is reachable. API answers are never cached: they never pass here.
const SHELL = "missive-shell-v1";
const FILES = [
  "/",
  "/app.js",
  "/worker.js",
  "/styles.css",
  "/icon.svg",
  "/manifest.webmanifest",
  "/pkg/missive_web.js",
  "/pkg/missive_web_bg.wasm",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k)))),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !FILES.includes(url.pathname)) {
    return;
  }
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(SHELL).then((cache) => cache.put(event.request, copy));
        }
        return response;
      })
      .catch(() => caches.match(event.request).then((cached) => cached ?? Response.error())),
  );
});

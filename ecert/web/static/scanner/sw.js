// Offline-first for this page's static assets only.
const CACHE = "ecert-static-v1";
const ASSETS = ["./", "./index.html", "/web/ecert.css", "/web/ecert.js"];
self.addEventListener("install", (event) => event.waitUntil(caches.open(CACHE).then((c) => c.addAll(ASSETS))));
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.pathname.startsWith("/v1/") || url.pathname.startsWith("/oauth/")) return;
  event.respondWith(caches.match(event.request).then((hit) => hit || fetch(event.request)));
});

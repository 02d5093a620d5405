// Offline-first for the console's static assets only; every API call goes to the network.
const CACHE = "ecert-agency-v1";
const ASSETS = ["./", "./index.html", "./agency.js", "./agency.css", "/web/ecert.css", "/web/ecert.js"];
self.addEventListener("install", (event) => event.waitUntil(caches.open(CACHE).then((c) => c.addAll(ASSETS))));
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.pathname.startsWith("/v1/")) return;
  event.respondWith(caches.match(event.request).then((hit) => hit || fetch(event.request)));
});

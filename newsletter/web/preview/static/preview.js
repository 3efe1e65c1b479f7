// The preview page: email width presets, dark mode, a frame as tall as the email, and live reload.
// Live reload: the server sends a "change" event after every rebuild; the page fetches itself again
// and swaps the parts marked data-live. The frame reloads only when the email's HTML changed, so
// while a story is broken the last good render stays in view under the error banner.
(() => {
  "use strict";
  const body = document.body;
  const status = document.getElementById("live-status");
  const store = {
    get(key, fallback) { try { return localStorage.getItem(key) ?? fallback; } catch { return fallback; } },
    set(key, value) { try { localStorage.setItem(key, value); } catch { /* private mode */ } },
  };
  const frame = () => document.getElementById("email");
  let dark = store.get("preview.dark", "0") === "1";
  let width = store.get("preview.width", "full");

  // --- the frame -------------------------------------------------------------------------------
  function fit() {
    const f = frame();
    const doc = f && f.contentDocument;
    if (!doc || !doc.body) return;
    const height = Math.ceil(Math.max(doc.body.scrollHeight, doc.body.getBoundingClientRect().height));
    if (height > 0) f.style.height = `${height}px`;
  }
  function setWidth(value) {
    width = value;
    const f = frame();
    if (f) f.style.width = value === "full" ? "100%" : `${value}px`;
    for (const b of document.querySelectorAll("button[data-width]")) {
      b.setAttribute("aria-pressed", String(b.dataset.width === value));
    }
    store.set("preview.width", value);
    requestAnimationFrame(fit);
  }
  function showFrame() {
    const f = frame();
    if (!f) return;
    const want = dark ? f.dataset.dark : f.dataset.light;
    if (f.getAttribute("src") !== want) f.setAttribute("src", want);
  }
  function setDark(on) {
    dark = on;
    document.getElementById("dark-toggle")?.setAttribute("aria-pressed", String(on));
    document.getElementById("dark-note")?.toggleAttribute("hidden", !on);
    store.set("preview.dark", on ? "1" : "0");
    showFrame();
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.width) setWidth(button.dataset.width);
    else if (button.id === "dark-toggle") setDark(!dark);
  });
  const f = frame();
  if (f) {
    // data-frame-src says which email the frame shows once it has loaded (the tests wait on it).
    const loaded = () => { fit(); body.dataset.frameSrc = f.getAttribute("src") || ""; };
    f.addEventListener("load", loaded);
    let lastWidth = 0;
    new ResizeObserver(() => {
      if (f.clientWidth !== lastWidth) { lastWidth = f.clientWidth; fit(); }
    }).observe(f);
    setWidth(width);
    setDark(dark);
    // The frame may have finished loading before this deferred script ran.
    const doc = f.contentDocument;
    if (doc && doc.readyState === "complete" && doc.URL !== "about:blank") loaded();
  }

  // --- live reload -----------------------------------------------------------------------------
  let busy = false;
  let again = false;
  function keepInputs(from, to) {
    for (const input of from.querySelectorAll("input[name]:not([type=hidden])")) {
      const twin = to.querySelector(`input[name="${CSS.escape(input.name)}"]:not([type=hidden])`);
      if (twin && input.value) twin.value = input.value;
    }
  }
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(location.href, { cache: "no-store", headers: { "X-Preview-Refresh": "1" } });
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const old = frame();
      const fresh = doc.getElementById("email");
      if (Boolean(old) !== Boolean(fresh)) { location.reload(); return; }
      for (const part of doc.querySelectorAll("[data-live][id]")) {
        const current = document.getElementById(part.id);
        if (!current) continue;
        const copy = document.importNode(part, true);
        keepInputs(current, copy);
        current.replaceWith(copy);
      }
      document.title = doc.title;
      body.dataset.generation = doc.body.dataset.generation || "";
      document.getElementById("dark-note")?.toggleAttribute("hidden", !dark);
      if (old && fresh && fresh.dataset.version !== old.dataset.version) {
        old.dataset.light = fresh.dataset.light;
        old.dataset.dark = fresh.dataset.dark;
        old.dataset.version = fresh.dataset.version;
        showFrame();
      }
      body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
    } catch (error) {
      setStatus("reconnecting", "cannot reach the preview server");
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }
  function setStatus(state, text) {
    if (!status) return;
    status.dataset.state = state;
    status.textContent = text;
  }
  if (body.dataset.events && "EventSource" in window) {
    const events = new EventSource(body.dataset.events);
    events.addEventListener("hello", (event) => {
      setStatus("live", "live");
      // Missed a change while (re)connecting, or the server restarted: catch up.
      if (JSON.parse(event.data).generation !== body.dataset.generation) refresh();
    });
    events.addEventListener("change", () => refresh());
    events.addEventListener("error", () => setStatus("reconnecting", "reconnecting…"));
  }
})();

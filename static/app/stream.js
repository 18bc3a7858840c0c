// Streaming answers: Stop button, Esc and the `prompt:cancel` event stop generation on the server.
// The answer fragment itself is driven by htmx's sse extension (hx-ext="sse" on the streaming article);
// this file finds the running stream's Stop form and submits it, and keeps the feed resumable.
// No inline scripts (strict CSP).
//
// Resuming: every feed event's id is the number of characters of the answer sent so far. When the
// connection drops, the browser's EventSource reconnects by itself and sends that id as Last-Event-ID,
// so the server sends only the missing text. When the EventSource gave up (closed) the sse extension
// opens a new one from the `sse-connect` attribute, which we keep pointing at `?from=<last id>`;
// either way no text is shown twice.
(function () {
  "use strict";

  document.addEventListener("htmx:sseMessage", function (event) {
    var message = event.detail;
    if (!message || !message.lastEventId || !/^\d+$/.test(message.lastEventId)) return;
    var article = event.target.closest && event.target.closest("article.streaming[sse-connect]");
    if (!article) return;
    var base = article.getAttribute("sse-connect").split("?")[0];
    article.setAttribute("sse-connect", base + "?from=" + message.lastEventId);
    article.dataset.offset = message.lastEventId;
  });

  function runningStopForm() {
    var streams = document.querySelectorAll("article.streaming[data-stream-id]");
    if (!streams.length) return null;
    return streams[streams.length - 1].querySelector("form.stop-form");
  }

  function stopRunningStream() {
    var form = runningStopForm();
    if (!form || form.dataset.stopping === "1") return false;
    form.dataset.stopping = "1";
    var button = form.querySelector("button");
    if (button) button.textContent = "Stopping…";
    // htmx posts it (hx-post) and swaps nothing; the SSE feed then delivers the cancelled answer.
    form.requestSubmit();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented || event.isComposing) return;
    if (stopRunningStream()) event.preventDefault();
  });

  // keys.js (another module) announces Esc during a request with this event.
  document.addEventListener("prompt:cancel", function () {
    stopRunningStream();
  });

  // The Stop button itself: mark the form so Esc does not post it twice.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.classList.contains("stop-form") && form.dataset.stopping !== "1") {
      form.dataset.stopping = "1";
    }
  }, true);
})();

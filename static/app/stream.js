// Streaming answers: Stop button, Esc and the `prompt:cancel` event stop generation on the server.
// The answer fragment itself is driven by htmx's sse extension (hx-ext="sse" on the streaming article);
// this file only finds the running stream's Stop form and submits it. No inline scripts (strict CSP).
(function () {
  "use strict";

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

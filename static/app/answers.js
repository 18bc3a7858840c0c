// Rendered answers: a copy button on every code block, and one polite announcement when an answer
// arrives (the streamed tokens themselves are not announced one by one: the streaming article is
// aria-busy and the answer area is not a live region). The whole-answer "Copy answer" buttons use the
// `data-copy` helper in keys.js. No inline scripts (strict CSP).
(function () {
  "use strict";

  var ANNOUNCE = "Answer ready.";
  var COPIED_MS = 2000;

  function statusFor(element) {
    var article = element.closest("article");
    return (article && article.querySelector(".copy-status")) || document.getElementById("answer-announce");
  }

  function addCopyButtons(root) {
    if (!navigator.clipboard || !root.querySelectorAll) return;
    root.querySelectorAll(".markdown .code-block").forEach(function (block, index) {
      var head = block.querySelector(".code-head");
      if (!head || head.querySelector(".copy-code")) return;
      var language = head.querySelector(".code-lang");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary copy-code";
      button.textContent = "Copy code";
      button.setAttribute("aria-label", "Copy code" + (language ? " (" + language.textContent + ")" : ""));
      head.appendChild(button);
    });
    root.querySelectorAll("[data-copy][hidden]").forEach(function (button) { button.hidden = false; });
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest(".copy-code") : null;
    if (!button || !navigator.clipboard) return;
    var code = button.closest(".code-block").querySelector("pre code");
    if (!code) return;
    navigator.clipboard.writeText(code.textContent).then(function () {
      button.textContent = "Copied";
      button.setAttribute("data-copied", "true");
      var status = statusFor(button);
      if (status) status.textContent = "Code copied.";
      window.setTimeout(function () { button.textContent = "Copy code"; }, COPIED_MS);
    });
  });

  // --- one announcement per answer ----------------------------------------------------------------
  function region() {
    return document.getElementById("answer-announce");
  }

  function onNewContent(root) {
    if (!(root instanceof Element)) return;
    addCopyButtons(root);
    var live = region();
    if (!live) return;
    var streaming = root.matches("article.streaming") ? [root] : root.querySelectorAll("article.streaming");
    if (streaming.length) live.textContent = "";  // a new answer is on its way: the next one is news again
    var answers = root.matches("#result article.answer:not(.streaming)") ? [root]
      : root.querySelectorAll("#result article.answer:not(.streaming)");
    Array.prototype.forEach.call(answers, function (answer) {
      if (answer.hasAttribute("data-announced")) return;
      answer.setAttribute("data-announced", "true");
      live.textContent = ANNOUNCE;
    });
  }

  // htmx fires htmx:load on every element it inserts (form answers, the stream's `done` swap);
  // the first one, on <body> at start-up, is the page itself: nothing is new there.
  document.addEventListener("htmx:load", function (event) {
    if (event.target === document.body) return;
    onNewContent(event.target);
  });

  function init() {
    document.querySelectorAll("#result article.answer").forEach(function (answer) {
      answer.setAttribute("data-announced", "true");
    });
    addCopyButtons(document);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// Conversations: the "Follow-up to …" marker of the prompt form, New conversation (button and Alt+N),
// and switching the versions of a turn on the conversation page ([ and ], or the ‹ › links).
// No inline scripts (strict CSP); without JavaScript every control here is a plain link.
(function () {
  "use strict";

  function marker() {
    return document.getElementById("follow-up");
  }

  function promptBox() {
    return document.querySelector("#prompt-form textarea[name=prompt]");
  }

  var isTyping = window.djangoHfMl.isTyping; // app.js: keys never fire while the visitor types

  // Forget the earlier turns: the next prompt starts a new conversation.
  function newConversation() {
    var box = promptBox();
    var current = marker();
    if (!box || !current) {
      window.location.href = "/";
      return;
    }
    current.querySelectorAll("input[type=hidden]").forEach(function (input) { input.remove(); });
    current.querySelectorAll(".follow-up-text").forEach(function (text) { text.remove(); });
    current.dataset.kind = "";
    current.hidden = true;
    if (window.location.search) window.history.replaceState(null, "", window.location.pathname);
    var status = document.getElementById("conversation-status");
    if (status) status.textContent = "New conversation: the next prompt starts afresh.";
    box.focus();
  }

  // A finished answer swaps in a new marker (follow-up to it); the prompt that was just answered leaves
  // the box so the next question can be typed (anything typed meanwhile stays).
  function adoptMarker() {
    var current = marker();
    var box = promptBox();
    if (!current || current.dataset.seen === "1") return;
    current.dataset.seen = "1";
    if (current.dataset.kind === "follow" && box && box.value.trim() === (current.dataset.prompt || "").trim()) {
      box.value = "";
    }
  }

  ["htmx:oobAfterSwap", "htmx:afterSettle", "htmx:sseMessage"].forEach(function (name) {
    document.addEventListener(name, adoptMarker);
  });

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-new-conversation]") : null;
    if (!target || !marker()) return;
    event.preventDefault();
    newConversation();
  });

  function switchBranch(direction) {
    var focused = document.activeElement instanceof Element ? document.activeElement.closest(".turn") : null;
    var turn = focused || document.querySelector(".thread .turn.selected");
    if (!turn) return false;
    var link = turn.querySelector("a[data-branch=" + direction + "]");
    if (!link) return false;
    window.location.href = link.href;
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.isComposing || event.defaultPrevented) return;
    if (event.altKey && !event.ctrlKey && !event.metaKey && (event.code === "KeyN" || event.key === "n" || event.key === "N")) {
      event.preventDefault();
      newConversation();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    if (event.key === "[" && switchBranch("previous")) event.preventDefault();
    else if (event.key === "]" && switchBranch("next")) event.preventDefault();
  });

  function init() {
    adoptMarker();
    var hash = window.location.hash;
    if (hash.indexOf("#turn-") === 0) {
      var turn = document.getElementById(hash.slice(1));
      if (turn) turn.focus();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

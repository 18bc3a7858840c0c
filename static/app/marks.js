// Stars and tags: "s" stars the focused history row (or the interaction shown), "t" opens its tag
// editor, Esc closes that editor. Every star button of the same interaction on the page shows the
// same state after a change, and the focus stays where it was. No inline scripts (strict CSP).
(function () {
  "use strict";

  var focusAfterSwap = null;

  var isTyping = window.djangoHfMl.isTyping; // app.js: keys never fire while the visitor types

  // The interaction the keys act on: the focused (or selected) history row, else the one shown.
  function current() {
    var active = document.activeElement instanceof Element ? document.activeElement : null;
    var holder = active && active.closest(".history-row, article.interaction, article.answer");
    if (holder && holder.querySelector(".star-form")) return holder;
    var selected = document.querySelector("#history-list .history-row.is-selected");
    if (selected && selected.querySelector(".star-form")) return selected;
    var shown = document.querySelector("#history-detail article.interaction, main > article.interaction, #result article.answer");
    return shown && shown.querySelector(".star-form") ? shown : null;
  }

  function toggleStar(holder) {
    var button = holder.querySelector(".star-form button");
    if (!button) return false;
    focusAfterSwap = document.activeElement;
    button.click();
    return true;
  }

  function openTags(holder) {
    var editor = holder.querySelector("details.tag-editor");
    if (editor) editor.open = true;
    var input = holder.querySelector(".tags-input");
    if (!input) {
      var detail = holder.closest("article.interaction");
      input = detail && detail.querySelector(".tags-input");
    }
    if (!input) return false;
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length); // add to the tags, not replace them
    return true;
  }

  function closeTags(input) {
    var editor = input.closest("details.tag-editor");
    if (!editor) return false;
    editor.open = false;
    var row = editor.closest(".history-row");
    var link = row && row.querySelector(".row-link");
    (link || editor.querySelector("summary")).focus();
    return true;
  }

  // Capture phase, so Esc in an open tag editor is not also taken as "close the panel" by keys.js.
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Escape" && target instanceof HTMLInputElement && target.classList.contains("tags-input")) {
      if (closeTags(target)) event.preventDefault();
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.isComposing || event.keyCode === 229) return;
    var dialog = document.getElementById("shortcuts");
    if (dialog && dialog.open) return;
    if (event.key !== "s" && event.key !== "t") return;
    var holder = current();
    if (!holder) return;
    var done = event.key === "s" ? toggleStar(holder) : openTags(holder);
    if (done) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest(".star-form button") : null;
    if (button && !focusAfterSwap) focusAfterSwap = button;
  }, true);

  function sameId(selector, attribute, id) {
    return Array.prototype.filter.call(document.querySelectorAll(selector), function (node) {
      return node.getAttribute(attribute) === id;
    });
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var elt = event.detail.elt;
    if (!(elt instanceof Element)) return;
    var fresh = elt.matches(".star-form") ? elt : null;
    if (!fresh && event.detail.target instanceof Element && event.detail.target.matches(".tags")) {
      var id = event.detail.target.getAttribute("data-tags-for");
      var block = sameId(".tags", "data-tags-for", id)[0];
      if (!block) return;
      var input = block.querySelector(".tags-input");
      if (block.querySelector(".field-error") && input) { input.focus(); return; }
      var row = block.closest(".history-row");
      var link = row && row.querySelector(".row-link");
      if (link) link.focus(); else if (input) input.focus();
      return;
    }
    if (!fresh) return;
    var starId = fresh.getAttribute("data-star-for");
    var pressed = fresh.querySelector("button").getAttribute("aria-pressed");
    sameId(".star-form", "data-star-for", starId).forEach(function (form) {
      if (form === fresh) return;
      var copy = form.querySelector("button");
      if (copy.getAttribute("aria-pressed") === pressed) return;
      form.querySelector("input[name=starred]").value = fresh.querySelector("input[name=starred]").value;
      copy.setAttribute("aria-pressed", pressed);
      copy.title = fresh.querySelector("button").title;
      copy.querySelector("[aria-hidden]").textContent = fresh.querySelector("[aria-hidden]").textContent;
    });
    var back = focusAfterSwap;
    focusAfterSwap = null;
    // Only where the swap lost the focus: never take it back from where the person moved it meanwhile.
    var lost = !document.activeElement || document.activeElement === document.body || !document.activeElement.isConnected;
    if (!back || !lost) return;
    if (back.isConnected) back.focus();
    else fresh.querySelector("button").focus();
  });
})();

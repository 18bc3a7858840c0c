// Compare and diff. History: the "select for diff" checkboxes enable "Diff selected" when exactly two
// are checked; "x" toggles the focused row's checkbox (rows are focused with j/k, see keys.js) and "d"
// opens the diff of the two selected. Without JavaScript the checkboxes still submit the GET form
// (/diff/?pick=<id>&pick=<id>). Compare page: Esc also stops every running answer ("Stop all").
// No inline scripts (strict CSP).
(function () {
  "use strict";

  function picksForm() {
    return document.getElementById("diff-picks");
  }

  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll("input[type=checkbox][data-pick]"));
  }

  function picked() {
    return boxes().filter(function (box) { return box.checked; });
  }

  function statusText(count) {
    if (count === 0) return "Select two rows (x) to diff their answers (d).";
    if (count === 1) return "1 selected: select one more to diff.";
    if (count === 2) return "2 selected: press d or “Diff selected”.";
    return count + " selected: a diff takes exactly two, unselect " + (count - 2) + ".";
  }

  function update() {
    var form = picksForm();
    if (!form) return;
    var count = picked().length;
    var button = form.querySelector("[data-diff-selected]");
    if (button) button.disabled = count !== 2;
    var status = document.getElementById("diff-picks-status");
    if (status) status.textContent = statusText(count);
  }

  var isTyping = window.djangoHfMl.isTyping; // app.js: keys never fire while the visitor types

  function focusedRow() {
    var active = document.activeElement;
    var row = active instanceof Element ? active.closest("#history-list .history-row") : null;
    return row || document.querySelector("#history-list .history-row.is-selected");
  }

  function toggleFocusedRow() {
    var row = focusedRow();
    var box = row ? row.querySelector("input[data-pick]") : null;
    if (!box) return false;
    box.checked = !box.checked;
    update();
    return true;
  }

  function openDiff() {
    var form = picksForm();
    if (!form) return false;
    if (picked().length !== 2) {
      var status = document.getElementById("diff-picks-status");
      if (status) status.textContent = "Select exactly two rows first (" + picked().length + " selected).";
      return true;
    }
    form.requestSubmit();
    return true;
  }

  function stopAll() {
    var form = document.querySelector("[data-comparison-live] form.stop-all-form");
    if (!form || form.dataset.stopping === "1") return false;
    form.dataset.stopping = "1";
    form.requestSubmit();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === "Escape") {
      stopAll(); // stream.js stops one column on Esc too; this one stops them all
      return;
    }
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    var dialog = document.getElementById("shortcuts");
    if (dialog && dialog.open) return;
    if (!picksForm()) return;
    if (event.key === "x" && toggleFocusedRow()) event.preventDefault();
    else if (event.key === "d" && openDiff()) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    if (event.target instanceof HTMLInputElement && event.target.hasAttribute("data-pick")) update();
  });
  document.addEventListener("htmx:afterSettle", update);
  document.addEventListener("htmx:historyRestore", update);

  // The stop-all form posts with htmx and swaps nothing: each column's feed brings its own end.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.classList.contains("stop-all-form")) {
      form.dataset.stopping = "1";
      var button = form.querySelector("button");
      if (button) button.textContent = "Stopping…";
    }
  }, true);

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", update);
  else update();
})();

// Keyboard shortcuts and focus management (the cheat-sheet behind "?" lists them all).
// Prompt box: Enter-sends option, ↑/↓ recall, Esc cancels. Anywhere: "/" search, j/k/arrows move
// through the history list, Enter opens, Esc closes, "?" opens the dialog. Ctrl/⌘+Enter lives in
// app.js. No inline scripts (strict CSP); htmx is driven through events only.
(function () {
  "use strict";

  var ENTER_SENDS_KEY = "hfml.enterSends";
  var inFlight = new Set();
  var recall = { index: -1, value: null, draft: "" };
  var lastOpenedId = null;
  var detailPushed = false;
  var focusAfterLoadMore = false;

  var isTyping = window.djangoHfMl.isTyping; // app.js: keys never fire while the visitor types

  function composing(event) {
    return event.isComposing || event.keyCode === 229;
  }

  function announce(text) {
    var region = document.getElementById("history-announce");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  // --- prompt box ---------------------------------------------------------------------------
  function promptBox() {
    return document.querySelector("textarea[data-submit-on-ctrl-enter]");
  }

  function enterSendsToggle() {
    return document.getElementById("enter-sends");
  }

  function earlierPrompts() {
    var rows = document.querySelectorAll("#recent-list .history-row[data-prompt]");
    return Array.prototype.map.call(rows, function (row) { return row.getAttribute("data-prompt"); });
  }

  function recallPrompt(box, step) {
    var prompts = earlierPrompts();
    if (!prompts.length) return false;
    var unchanged = recall.value !== null && box.value === recall.value;
    if (box.value !== "" && !unchanged) return false;
    if (!unchanged) { recall.index = -1; recall.draft = box.value; }
    var next = recall.index + step;
    if (next < -1 || next >= prompts.length) return false;
    recall.index = next;
    recall.value = next === -1 ? "" : prompts[next];
    box.value = next === -1 ? recall.draft : recall.value;
    if (next === -1) recall.value = null;
    box.setSelectionRange(box.value.length, box.value.length);
    return true;
  }

  function onPromptKey(event, box) {
    if (composing(event)) return;
    if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
      var toggle = enterSendsToggle();
      if (toggle && toggle.checked) {
        event.preventDefault();
        if (box.form) box.form.requestSubmit();
      }
      return;
    }
    if ((event.key === "ArrowUp" || event.key === "ArrowDown") && !event.shiftKey && !event.altKey &&
        !event.ctrlKey && !event.metaKey) {
      if (recallPrompt(box, event.key === "ArrowUp" ? 1 : -1)) event.preventDefault();
    }
  }

  // --- requests in flight (Esc cancels) ---------------------------------------------------------
  document.addEventListener("htmx:beforeRequest", function (event) {
    inFlight.add(event.detail.elt);
    var link = event.detail.elt;
    focusAfterLoadMore = link instanceof HTMLAnchorElement && link.closest(".load-more") !== null &&
      document.activeElement === link;
  });
  document.addEventListener("htmx:afterRequest", function (event) { inFlight.delete(event.detail.elt); });

  function cancelRequests() {
    if (!inFlight.size || typeof htmx === "undefined") return false;
    inFlight.forEach(function (elt) { htmx.trigger(elt, "htmx:abort"); });
    inFlight.clear();
    document.dispatchEvent(new CustomEvent("prompt:cancel", { bubbles: true }));
    var result = document.getElementById("result");
    if (result) result.setAttribute("data-cancelled", "true");
    announce("Cancelled.");
    return true;
  }

  // --- history list -------------------------------------------------------------------------------
  function rowLinks() {
    return Array.prototype.slice.call(document.querySelectorAll("#history-list .history-row:not(.deleted) .row-link"));
  }

  function select(link) {
    document.querySelectorAll("#history-list .history-row.is-selected").forEach(function (row) {
      row.classList.remove("is-selected");
    });
    link.closest(".history-row").classList.add("is-selected");
    link.focus();
    link.scrollIntoView({ block: "nearest" });
  }

  function moveSelection(step) {
    var links = rowLinks();
    if (!links.length) return false;
    var current = links.indexOf(document.activeElement);
    if (current === -1) {
      var selected = document.querySelector("#history-list .history-row.is-selected .row-link");
      current = selected ? links.indexOf(selected) : -1;
    }
    var next = current === -1 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, current + step));
    select(links[next]);
    return true;
  }

  function focusSearch() {
    var search = document.getElementById("history-q");
    if (search) {
      search.focus();
      search.select();
      return;
    }
    var link = document.querySelector("a[data-history-link]");
    if (link) window.location.href = link.getAttribute("href") + "#search";
  }

  function detailPanel() {
    return document.getElementById("history-detail");
  }

  function closeDetail() {
    var panel = detailPanel();
    if (panel && panel.childElementCount) {
      panel.innerHTML = "";
      if (detailPushed) {
        detailPushed = false;
        window.history.back();
      }
      restoreRowFocus();
      return true;
    }
    var standalone = document.querySelector("main article.interaction [data-close-detail]");
    if (standalone && !panel) {
      window.location.href = standalone.getAttribute("href");
      return true;
    }
    return false;
  }

  function restoreRowFocus() {
    if (!lastOpenedId) return;
    var link = document.querySelector("#row-" + CSS.escape(lastOpenedId) + " .row-link");
    if (link) select(link);
  }

  function shortcutsDialog() {
    return document.getElementById("shortcuts");
  }

  // --- the one keydown handler -----------------------------------------------------------------
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var box = promptBox();
    if (box && target === box) {
      if (!event.defaultPrevented) onPromptKey(event, box); // box.js handled the template listbox
      if (event.defaultPrevented || event.key !== "Escape") return;
    }
    if (event.key === "Escape") {
      if (event.defaultPrevented || composing(event)) return;
      var dialog = shortcutsDialog();
      if (dialog && dialog.open) return; // the dialog closes itself on Esc
      if (cancelRequests() || closeDetail()) event.preventDefault();
      return;
    }
    if (isTyping(target) || event.ctrlKey || event.metaKey || event.altKey || composing(event)) return;
    if (shortcutsDialog() && shortcutsDialog().open) return;
    switch (event.key) {
      case "/":
        event.preventDefault();
        focusSearch();
        break;
      case "?":
        event.preventDefault();
        if (shortcutsDialog()) shortcutsDialog().showModal();
        break;
      case "j":
      case "ArrowDown":
        if (moveSelection(1)) event.preventDefault();
        break;
      case "k":
      case "ArrowUp":
        if (moveSelection(-1)) event.preventDefault();
        break;
      default:
        break;
    }
  });

  // --- clicks: shortcuts button, copy buttons, close links ------------------------------------------
  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    if (target.closest("[data-open-shortcuts]") && shortcutsDialog()) {
      shortcutsDialog().showModal();
      return;
    }
    var copy = target.closest("[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent).then(function () {
          var status = copy.closest("article").querySelector(".copy-status");
          copy.setAttribute("data-copied", "true");
          if (status) status.textContent = "Copied.";
        });
      }
      return;
    }
    if (target.closest("[data-close-detail]") && detailPanel() && detailPanel().contains(target)) {
      event.preventDefault();
      closeDetail();
      return;
    }
    var rowLink = target.closest("#history-list .row-link");
    if (rowLink) lastOpenedId = rowLink.closest(".history-row").getAttribute("data-id");
  });

  // --- after each swap: focus, announcements, undo timers, copy buttons ----------------------------
  function enhance(root) {
    if (navigator.clipboard) {
      root.querySelectorAll("[data-copy][hidden]").forEach(function (button) { button.hidden = false; });
    }
    root.querySelectorAll(".history-row.deleted[data-undo-seconds]").forEach(function (row) {
      if (row.dataset.timer) return;
      row.dataset.timer = "1";
      window.setTimeout(function () {
        if (row.isConnected && row.classList.contains("deleted")) row.remove();
      }, Number(row.getAttribute("data-undo-seconds")) * 1000);
    });
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    enhance(document);
    if (target.id === "history-detail") {
      detailPushed = true;
      target.focus();
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    var results = document.getElementById("history-results");
    if (results && target && target.id === "history-results") announce(results.getAttribute("data-announce") || "");
    var report = document.getElementById("import-report") || document.getElementById("import-file-error");
    if (report && target && target.id === "import-section") {
      if (!report.hasAttribute("tabindex")) report.setAttribute("tabindex", "-1");
      report.focus();
    }
    // A row swapped back by delete/undo keeps the focus; rows arriving through "Load more" do not
    // (htmx settles each new row: focusing them in turn would jump to the end and load the next page).
    var elt = event.detail.elt;
    var trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
    var fromLoadMore = trigger && trigger.closest && trigger.closest(".load-more");
    if (elt && elt.classList && elt.classList.contains("history-row") && !fromLoadMore) {
      if (elt.classList.contains("deleted")) {
        var undo = elt.querySelector("button");
        if (undo) undo.focus();
      } else {
        var link = elt.querySelector(".row-link");
        if (link) select(link);
      }
    }
  });

  // "Load more": focus the first new row when it was asked for with the keyboard or a click.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt;
    if (!(elt instanceof HTMLAnchorElement) || !elt.closest(".load-more")) return;
    var before = rowLinks().length;
    var wantFocus = focusAfterLoadMore;
    document.addEventListener("htmx:afterSettle", function once() {
      document.removeEventListener("htmx:afterSettle", once);
      var links = rowLinks();
      announce((links.length - before) + " more interactions loaded.");
      if (wantFocus && links[before]) select(links[before]);
    });
  });

  // Import: show the upload's progress, and let a 400 (bad file) swap in like a 200 so its message shows.
  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.detail.elt;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-import-form")) return;
    var bar = document.getElementById("import-progress");
    var text = document.getElementById("import-progress-text");
    if (!bar || !event.detail.total) return;
    var percent = Math.round((event.detail.loaded / event.detail.total) * 100);
    bar.hidden = false;
    bar.value = percent;
    if (text) text.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Checking and importing…";
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt;
    if (elt instanceof HTMLFormElement && elt.hasAttribute("data-import-form") && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Filter requests leave empty fields out, so every pushed URL is as short as the state it holds.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!(elt instanceof Element) || !elt.closest("#history-filters")) return;
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (name) {
      if (params[name] === "") delete params[name];
    });
  });

  document.addEventListener("htmx:historyRestore", function () {
    detailPushed = false;
    enhance(document);
    restoreRowFocus();
  });

  document.addEventListener("change", function (event) {
    var toggle = enterSendsToggle();
    if (toggle && event.target === toggle) {
      try { window.localStorage.setItem(ENTER_SENDS_KEY, toggle.checked ? "1" : "0"); } catch (e) { /* private mode */ }
    }
  });

  function init() {
    var toggle = enterSendsToggle();
    if (toggle) {
      try { toggle.checked = window.localStorage.getItem(ENTER_SENDS_KEY) === "1"; } catch (e) { /* private mode */ }
    }
    enhance(document);
    if (window.location.hash === "#search") focusSearch();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

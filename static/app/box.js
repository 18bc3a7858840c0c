// The prompt box: drafts, "/name" templates and Tab between {{variables}}. No inline scripts (strict CSP).
//
// Drafts. What you type in the prompt form (the text and the parameters) is saved in localStorage as
// you type (300 ms after the last key, and at once when the page is left), one draft per page and form.
// It comes back on reload, Back, and when you come back to the page through a link. Rules:
//   * a page the server filled in on purpose ("edit & resend", Reuse prompt) shows what it was asked to
//     show when you arrive through a link; a reload or Back/Forward shows your draft instead;
//   * each tab keeps its own draft (a reload or Back stays in the tab and finds it); a new tab starts
//     from the newest draft of any tab;
//   * sending clears this tab's draft (and any other tab's holding exactly the text sent), never what
//     another tab is typing.
//
// Templates. Typing "/" at the start of the box or of a line, then a name, opens a listbox of your
// templates (from /api/templates): ↑/↓ move, Enter or Tab inserts, Esc closes. The inserted body
// replaces "/name" and its first {{variable}} is selected. While any {{variable}} remains in the text,
// Tab selects the next one and Shift+Tab the previous one (wrapping round); Esc first, or no variable
// left, and Tab moves the focus on as usual.
(function () {
  "use strict";

  var DRAFT_PREFIX = "hfml.draft:";
  var TAB_KEY = "hfml.tab";
  var SAVE_DELAY_MS = 300;
  var MAX_OPTIONS = 8;
  var MAX_TABS = 10;
  var PLACEHOLDER = /\{\{[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*\}\}/g;
  var SLASH = /(^|\n)\/([a-z0-9_-]{0,40})$/;

  var saveTimer = null;
  var sentPrompt = null;
  var templates = null;
  var loading = null;
  var loadedAt = 0;
  var menu = { open: false, items: [], active: 0, start: 0, end: 0 };
  var tabReleased = false;

  function storage() {
    try { return window.localStorage; } catch (e) { return null; }
  }

  function tabId() {
    try {
      var id = window.sessionStorage.getItem(TAB_KEY);
      if (!id) {
        id = Math.random().toString(36).slice(2) + Date.now().toString(36);
        window.sessionStorage.setItem(TAB_KEY, id);
      }
      return id;
    } catch (e) { return "tab"; }
  }

  function promptForm() { return document.getElementById("prompt-form"); }
  function promptBox() {
    var form = promptForm();
    return form ? form.querySelector("textarea[data-submit-on-ctrl-enter]") : null;
  }

  // --- drafts ---------------------------------------------------------------------------------------
  function draftKey(form) { return DRAFT_PREFIX + window.location.pathname + "#" + form.id; }

  // localStorage holds, per page and form, one draft per tab: {tabs: {<tab id>: {prompt, params, saved_at}}}.
  function readDrafts(form) {
    var store = storage();
    if (!store) return {};
    try {
      var value = JSON.parse(store.getItem(draftKey(form)) || "null");
      return value && typeof value.tabs === "object" && value.tabs !== null ? value.tabs : {};
    } catch (e) { return {}; }
  }

  function writeDrafts(form, tabs) {
    var store = storage();
    if (!store) return;
    var ids = Object.keys(tabs).sort(function (a, b) { return (tabs[b].saved_at || 0) - (tabs[a].saved_at || 0); });
    var kept = {};
    ids.slice(0, MAX_TABS).forEach(function (id) { kept[id] = tabs[id]; });
    try {
      if (ids.length) store.setItem(draftKey(form), JSON.stringify({ tabs: kept }));
      else store.removeItem(draftKey(form));
    } catch (e) { /* storage full or disabled: the draft is just not kept */ }
  }

  // This tab's own draft (a reload or Back keeps the tab), else the newest one of any tab (a new tab).
  function readDraft(form) {
    var tabs = readDrafts(form);
    var own = tabs[tabId()];
    if (own && typeof own.prompt === "string") return own;
    var newest = null;
    Object.keys(tabs).forEach(function (id) {
      var draft = tabs[id];
      if (draft && typeof draft.prompt === "string" && (!newest || draft.saved_at > newest.saved_at)) newest = draft;
    });
    return newest;
  }

  function paramFields(form) {
    return Array.prototype.filter.call(form.elements, function (field) {
      return field.name && field.name !== "csrfmiddlewaretoken" && field.name !== "prompt" &&
        !/^(submit|button|hidden|file)$/.test(field.type);
    });
  }

  function collectParams(form) {
    var params = {};
    paramFields(form).forEach(function (field) {
      params[field.name] = field.type === "checkbox" ? field.checked : field.value;
    });
    return params;
  }

  function paramsChanged(form) {
    return paramFields(form).some(function (field) {
      if (field.type === "checkbox") return field.checked !== field.defaultChecked;
      if (field instanceof HTMLSelectElement) {
        return Array.prototype.some.call(field.options, function (o) { return o.selected !== o.defaultSelected; });
      }
      return field.value !== field.defaultValue;
    });
  }

  function saveDraft() {
    window.clearTimeout(saveTimer);
    saveTimer = null;
    var form = promptForm();
    var box = promptBox();
    if (!form || !box) return;
    var tabs = readDrafts(form);
    if (!box.value.trim() && !paramsChanged(form)) delete tabs[tabId()];
    else tabs[tabId()] = { prompt: box.value, params: collectParams(form), saved_at: Date.now() };
    writeDrafts(form, tabs);
  }

  function scheduleSave() {
    window.clearTimeout(saveTimer);
    saveTimer = window.setTimeout(saveDraft, SAVE_DELAY_MS);
  }

  function navigationType() {
    var entries = window.performance && performance.getEntriesByType ? performance.getEntriesByType("navigation") : [];
    return entries.length ? entries[0].type : "navigate";
  }

  function restoreDraft() {
    var form = promptForm();
    var box = promptBox();
    if (!form || !box) return;
    var draft = readDraft(form);
    if (!draft) return;
    var server = box.defaultValue;
    if (server.trim() && navigationType() === "navigate" && draft.prompt !== server) return;
    box.value = draft.prompt;
    var params = draft.params || {};
    paramFields(form).forEach(function (field) {
      if (!Object.prototype.hasOwnProperty.call(params, field.name)) return;
      if (field.type === "checkbox") field.checked = params[field.name] === true;
      else field.value = String(params[field.name]);
    });
    box.setSelectionRange(box.value.length, box.value.length);
    box.setAttribute("data-draft-restored", "true");
  }

  // Sent: this tab's draft goes, and any other tab's that holds exactly what was sent; the rest stay.
  function clearSentDraft() {
    var form = promptForm();
    if (!form) return;
    var tabs = readDrafts(form);
    Object.keys(tabs).forEach(function (id) {
      if (id === tabId() || (tabs[id] && tabs[id].prompt === sentPrompt)) delete tabs[id];
    });
    writeDrafts(form, tabs);
  }

  document.addEventListener("input", function (event) {
    var form = promptForm();
    if (form && event.target instanceof Element && form.contains(event.target)) {
      scheduleSave();
      if (event.target === promptBox()) {
        tabReleased = false;
        updateMenu();
      }
    }
  });
  document.addEventListener("change", function (event) {
    var form = promptForm();
    if (form && event.target instanceof Element && form.contains(event.target)) scheduleSave();
  });
  window.addEventListener("pagehide", function () { if (saveTimer !== null) saveDraft(); });

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt === promptForm()) {
      if (saveTimer !== null) saveDraft();
      var box = promptBox();
      sentPrompt = box ? box.value : null;
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt !== promptForm() || !event.detail.successful) return;
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status >= 200 && status < 300) clearSentDraft();
  });

  // --- templates: the "/name" listbox ----------------------------------------------------------------
  function loadTemplates(force) {
    var box = promptBox();
    var url = box && box.getAttribute("data-templates-url");
    if (!url) return Promise.resolve([]);
    if (loading) return loading;
    if (templates && !force) return Promise.resolve(templates);
    loading = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { templates: [] }; })
      .then(function (data) {
        templates = Array.isArray(data.templates) ? data.templates : [];
        loadedAt = Date.now();
        return templates;
      })
      .catch(function () { return templates || []; })
      .then(function (list) { loading = null; return list; });
    return loading;
  }

  function listbox() { return document.getElementById("template-suggestions"); }
  function status() { return document.getElementById("template-status"); }

  function slashQuery(box) {
    if (box.selectionStart !== box.selectionEnd) return null;
    var caret = box.selectionStart;
    var match = SLASH.exec(box.value.slice(Math.max(0, caret - 42), caret));
    if (!match) return null;
    var before = box.value.slice(0, caret);
    var start = caret - match[2].length - 1;
    // The slash must open the box or a line (the regex saw a window; check the real text).
    if (start > 0 && before.charAt(start - 1) !== "\n") return null;
    return { query: match[2], start: start, end: caret };
  }

  function matching(query) {
    var list = templates || [];
    var first = list.filter(function (t) { return t.name.indexOf(query) === 0; });
    var rest = list.filter(function (t) { return t.name.indexOf(query) > 0; });
    return first.concat(rest).slice(0, MAX_OPTIONS);
  }

  function closeMenu() {
    var box = promptBox();
    var list = listbox();
    menu.open = false;
    menu.items = [];
    if (list) { list.hidden = true; list.textContent = ""; }
    if (box) box.removeAttribute("aria-activedescendant");
  }

  function renderMenu() {
    var box = promptBox();
    var list = listbox();
    if (!box || !list) return;
    list.textContent = "";
    menu.items.forEach(function (template, index) {
      var option = document.createElement("li");
      option.id = "template-option-" + index;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", index === menu.active ? "true" : "false");
      option.setAttribute("data-template-name", template.name);
      var name = document.createElement("span");
      name.className = "template-option-name";
      name.textContent = "/" + template.name;
      var preview = document.createElement("span");
      preview.className = "template-option-body";
      preview.textContent = template.body.length > 80 ? template.body.slice(0, 80) + "…" : template.body;
      option.appendChild(name);
      option.appendChild(document.createTextNode(" "));
      option.appendChild(preview);
      list.appendChild(option);
    });
    list.hidden = false;
    box.setAttribute("aria-activedescendant", "template-option-" + menu.active);
    var active = document.getElementById("template-option-" + menu.active);
    if (active && active.scrollIntoView) active.scrollIntoView({ block: "nearest" });
  }

  function announce(text) {
    var region = status();
    if (region) region.textContent = text;
  }

  function updateMenu() {
    var box = promptBox();
    if (!box) return;
    var found = slashQuery(box);
    if (!found) { if (menu.open) closeMenu(); return; }
    var show = function () {
      var again = slashQuery(box);
      if (!again) { closeMenu(); return; }
      var items = matching(again.query);
      if (!items.length) {
        if (menu.open) announce("No template matches /" + again.query + ".");
        closeMenu();
        return;
      }
      var wasOpen = menu.open;
      menu.open = true;
      menu.items = items;
      menu.active = 0;
      menu.start = again.start;
      menu.end = again.end;
      renderMenu();
      if (!wasOpen || items.length) {
        announce(items.length + " template" + (items.length === 1 ? "" : "s") + ": ↑/↓ to choose, Enter to insert, Esc to close.");
      }
    };
    var stale = Date.now() - loadedAt > 30000;
    if (templates && !stale) show();
    else loadTemplates(true).then(show);
  }

  function moveActive(step) {
    if (!menu.items.length) return;
    menu.active = (menu.active + step + menu.items.length) % menu.items.length;
    renderMenu();
  }

  function placeholders(text) {
    var found = [];
    var match;
    PLACEHOLDER.lastIndex = 0;
    while ((match = PLACEHOLDER.exec(text)) !== null) found.push({ start: match.index, end: match.index + match[0].length });
    return found;
  }

  function insertTemplate(template) {
    var box = promptBox();
    if (!box || !template) return;
    var start = menu.start;
    closeMenu();
    box.focus();
    box.setRangeText(template.body, start, box.selectionEnd, "end");
    var inserted = placeholders(box.value).filter(function (p) {
      return p.start >= start && p.end <= start + template.body.length;
    });
    if (inserted.length) box.setSelectionRange(inserted[0].start, inserted[0].end);
    box.dispatchEvent(new Event("input", { bubbles: true }));
    if (inserted.length) box.setSelectionRange(inserted[0].start, inserted[0].end);
    announce("Inserted /" + template.name + (inserted.length ? ". Tab moves to the next {{variable}}." : "."));
  }

  function jumpToPlaceholder(box, backwards) {
    var spots = placeholders(box.value);
    if (!spots.length) return false;
    var target = null;
    if (backwards) {
      for (var i = spots.length - 1; i >= 0; i--) {
        if (spots[i].end <= box.selectionStart && !(spots[i].start === box.selectionStart)) { target = spots[i]; break; }
      }
      target = target || spots[spots.length - 1];
    } else {
      for (var j = 0; j < spots.length; j++) {
        if (spots[j].start >= box.selectionEnd) { target = spots[j]; break; }
      }
      target = target || spots[0];
    }
    box.setSelectionRange(target.start, target.end);
    return true;
  }

  // Capture phase: runs before keys.js, which leaves a key alone once it is handled here.
  document.addEventListener("keydown", function (event) {
    var box = promptBox();
    if (!box || event.target !== box || event.isComposing || event.keyCode === 229) return;
    var plain = !event.ctrlKey && !event.metaKey && !event.altKey;
    if (menu.open) {
      if (event.key === "ArrowDown" && plain) { event.preventDefault(); moveActive(1); return; }
      if (event.key === "ArrowUp" && plain) { event.preventDefault(); moveActive(-1); return; }
      if ((event.key === "Enter" || event.key === "Tab") && plain && !event.shiftKey) {
        event.preventDefault();
        insertTemplate(menu.items[menu.active]);
        return;
      }
      if (event.key === "Escape") { event.preventDefault(); closeMenu(); announce("Closed."); return; }
    }
    if (event.key === "Escape" && placeholders(box.value).length) tabReleased = true;
    if (event.key === "Tab" && plain && !tabReleased) {
      if (jumpToPlaceholder(box, event.shiftKey)) event.preventDefault();
    }
  }, true);

  document.addEventListener("mousedown", function (event) {
    var option = event.target instanceof Element ? event.target.closest("#template-suggestions [role=option]") : null;
    if (!option) return;
    event.preventDefault(); // keep the caret in the box
    var index = Number(option.id.replace("template-option-", ""));
    insertTemplate(menu.items[index]);
  });

  document.addEventListener("focusout", function (event) {
    if (event.target === promptBox()) window.setTimeout(function () {
      if (document.activeElement !== promptBox()) closeMenu();
    }, 0);
  });

  document.addEventListener("focusin", function (event) {
    if (event.target === promptBox() && (!templates || Date.now() - loadedAt > 30000)) loadTemplates(true);
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") loadedAt = 0; // another tab may have saved a template
  });

  // The form swapped back in after a 422 is a new textarea: nothing to restore, but keep saving.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "prompt-form") closeMenu();
  });

  function init() {
    restoreDraft();
    var box = promptBox();
    if (box && document.activeElement === box) loadTemplates(true);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// Keyboard and focus behaviour for the prompt page. No inline scripts: this file is the only JS
// besides htmx, so a strict Content-Security-Policy works.
(function () {
  "use strict";

  // Shared by the other scripts (loaded after this one): is the visitor typing into a field, where a
  // single-key shortcut must not fire?
  window.djangoHfMl = window.djangoHfMl || {};
  window.djangoHfMl.isTyping = function (target) {
    if (!(target instanceof Element)) return false;
    if (target.isContentEditable) return true;
    if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
    if (target instanceof HTMLInputElement) {
      return !/^(checkbox|radio|button|submit|reset|file|range|color)$/.test(target.type);
    }
    return false;
  };

  function isSubmitShortcut(event) {
    return event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing;
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLTextAreaElement) || !target.hasAttribute("data-submit-on-ctrl-enter")) return;
    if (!isSubmitShortcut(event)) return;
    event.preventDefault();
    if (target.form) target.form.requestSubmit();
  });

  // After htmx swaps the prompt form back in (a 422), keep the caret in the prompt box.
  document.addEventListener("htmx:afterSwap", function (event) {
    var form = document.getElementById("prompt-form");
    if (form && event.detail.target === form) {
      var box = form.querySelector("textarea");
      if (box) box.focus();
    }
  });
})();

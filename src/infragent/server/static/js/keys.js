// The API keys page: copy the one-time secret. Delegated on document, because the secret arrives in
// a section htmx swaps in (swapped content runs no scripts: the CSP and htmx-config forbid it).
"use strict";
document.addEventListener("click", function (event) {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  const source = document.querySelector(button.getAttribute("data-copy"));
  if (!source) return;
  const text = source.textContent.trim();
  const done = function () { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
  } else {
    selectText(source); // plain http: the browser has no clipboard API; select it for Ctrl+C
    button.textContent = "Press Ctrl+C";
  }
});

function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

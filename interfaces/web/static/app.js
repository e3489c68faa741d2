// After a partial update by htmx: move focus to the result and announce it (aria-live).
document.addEventListener("htmx:afterSettle", function (event) {
  var root = event.detail.elt && event.detail.elt.isConnected ? event.detail.elt : document;
  var target = document.querySelector("[data-announce]") || root.querySelector("h1");
  var live = document.getElementById("announcer");
  if (!target) { return; }
  if (!target.hasAttribute("tabindex")) { target.setAttribute("tabindex", "-1"); }
  target.focus();
  if (live) {
    live.textContent = "";
    window.setTimeout(function () { live.textContent = target.textContent.trim(); }, 50);
  }
});

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

// A partial update the server refused (403, 409, 422, 5xx): show its page's message in place
// of the form, focused and announced, instead of leaving the form as if nothing happened.
document.addEventListener("htmx:responseError", function (event) {
  var xhr = event.detail.xhr;
  var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
  var shown = doc.getElementById("main");
  var here = document.getElementById("main");
  if (!shown || !here) { return; }
  here.replaceWith(document.importNode(shown, true));
  var heading = document.querySelector("#main h1") || document.getElementById("main");
  var live = document.getElementById("announcer");
  if (!heading.hasAttribute("tabindex")) { heading.setAttribute("tabindex", "-1"); }
  heading.focus();
  if (live) {
    live.textContent = "";
    window.setTimeout(function () { live.textContent = heading.textContent.trim(); }, 50);
  }
});

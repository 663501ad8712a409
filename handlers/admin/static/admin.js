// The order page asks for its live part every 2 seconds (htmx) and swaps in the new one when the
// order changed. While the merchant is typing in a form of that part, the swap would throw away
// what they typed: the poll is skipped while a form there has the focus or holds typed input,
// until the form is sent (the page is drawn again) or its <details> is closed.
(function () {
  "use strict";

  function typingIn(region) {
    var active = document.activeElement;
    if (active && active.form && region.contains(active)) {
      return true;
    }
    return region.querySelector("form[data-typed]") !== null;
  }

  document.addEventListener("input", function (event) {
    if (event.target.form) {
      event.target.form.setAttribute("data-typed", "");
    }
  });

  // `toggle` does not bubble: listen while it goes down to the <details>.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (details.tagName === "DETAILS" && !details.open) {
      details.querySelectorAll("form[data-typed]").forEach(function (form) {
        form.removeAttribute("data-typed");
      });
    }
  }, true);

  document.addEventListener("htmx:beforeRequest", function (event) {
    var region = event.detail.elt;
    if (region.id === "order-live" && typingIn(region)) {
      event.preventDefault();
    }
  });
})();

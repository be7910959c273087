/* Cairn console: the only script. Live parts poll the server for an HTML
   fragment (elements with data-poll="URL" data-interval="ms") and replace
   their content; polling pauses while the tab is hidden. Forms with
   data-confirm ask first. No build step, no framework. */
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-interval") || "5000", 10);
    function tick() {
      if (document.hidden) { return schedule(); }
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { el.innerHTML = html; } })
        .catch(function () {})
        .then(schedule);
    }
    function schedule() { setTimeout(tick, every); }
    schedule();
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), poll);
    document.addEventListener("submit", function (ev) {
      var msg = ev.target.getAttribute("data-confirm");
      if (msg && !window.confirm(msg)) { ev.preventDefault(); }
    });
    // schedule mode: show the interval or the times field
    var modes = document.querySelectorAll("input[name=schedule_mode]");
    function sync() {
      var checked = document.querySelector("input[name=schedule_mode]:checked");
      var mode = checked ? checked.value : "interval";
      Array.prototype.forEach.call(document.querySelectorAll("[data-mode]"), function (el) {
        el.hidden = el.getAttribute("data-mode") !== mode;
      });
    }
    Array.prototype.forEach.call(modes, function (m) { m.addEventListener("change", sync); });
    if (modes.length) { sync(); }
  });
})();
/* "select all" checkboxes: data-check-all="NAME" ticks every input[name=NAME] */
document.addEventListener("change", function (ev) {
  var name = ev.target.getAttribute && ev.target.getAttribute("data-check-all");
  if (!name) { return; }
  Array.prototype.forEach.call(document.querySelectorAll("input[name='" + name + "']"), function (box) {
    box.checked = ev.target.checked;
  });
});

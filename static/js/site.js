/* Progressive enhancements; every page works without them (no inline script: the CSP
   forbids it, so this file is the only script).
   1. The resend countdown ticks and keeps its button disabled until the time is up.
   2. The waiting /verify page asks /verify/status every few seconds and moves on by itself
      when the registration was verified on another device or browser. */
(function () {
  "use strict";

  var POLL_MS = 4000;          // light polling: one tiny JSON request every 4 s
  var POLL_LIMIT_MS = 30 * 60 * 1000;  // stop after 30 minutes; the "Check now" link remains

  function formatTime(seconds) {
    var m = Math.floor(seconds / 60);
    var s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function startCountdown(element) {
    var seconds = parseInt(element.getAttribute("data-countdown"), 10);
    if (!(seconds > 0)) { return; }
    var form = element.closest("form");
    var button = form && form.querySelector("button[type=submit]");
    var email = form && form.querySelector("input[name=email]:not([type=hidden])");
    var status = element.parentNode.querySelector("[data-countdown-status]");
    var time = element.querySelector(".countdown-time");
    var deadline = Date.now() + seconds * 1000;
    var timer = null;

    function setWaiting(waiting) {
      if (!button) { return; }
      button.disabled = waiting;
    }

    function finish() {
      window.clearInterval(timer);
      element.textContent = element.getAttribute("data-ready");
      setWaiting(false);
      // Announced once, politely, instead of every tick.
      if (status) { status.textContent = element.getAttribute("data-ready"); }
    }

    function tick() {
      var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      if (left <= 0) { finish(); return; }
      if (time) {
        time.textContent = formatTime(left);
        time.setAttribute("datetime", "PT" + left + "S");
      }
    }

    // The wait belongs to the address it was counted for: another address may be asked now.
    if (email) {
      var original = email.value;
      email.addEventListener("input", function () {
        setWaiting(email.value.trim().toLowerCase() === original.trim().toLowerCase() &&
                   Date.now() < deadline);
      });
    }
    setWaiting(true);
    tick();
    timer = window.setInterval(tick, 1000);
  }

  function watchStatus(element) {
    var statusUrl = element.getAttribute("data-status-url");
    var doneUrl = element.getAttribute("data-done-url");
    var started = Date.now();
    var timer = null;

    function schedule(delay) {
      window.clearTimeout(timer);
      if (Date.now() - started < POLL_LIMIT_MS) { timer = window.setTimeout(check, delay); }
    }

    function check() {
      if (document.hidden) { return; }  // resumes on visibilitychange
      fetch(statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"},
                        cache: "no-store"})
        .then(function (response) { return response.ok ? response.json() : {status: "retry"}; })
        .then(function (body) {
          if (body.status === "verified") { window.location.assign(doneUrl); return; }
          if (body.status === "none") { return; }  // nothing to wait for in this browser
          schedule(POLL_MS);
        })
        .catch(function () { schedule(POLL_MS * 2); });  // offline for a moment: slow down
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { schedule(0); }
    });
    schedule(POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-countdown]"), startCountdown);
    var watcher = document.querySelector("[data-status-url]");
    if (watcher && window.fetch) { watchStatus(watcher); }
  });
}());

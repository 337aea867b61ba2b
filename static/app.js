// Clawdspace dashboard: refreshes [data-live] regions in place and marks
// forms busy while they submit. Pages work without it; it only adds
// live updates.
(function () {
  "use strict";

  // Helpers the page scripts share (app.js runs before them: all are
  // deferred, in document order).
  window.Clawdspace = {
    bytes: function (n) {
      var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
      while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
      return (i ? n.toFixed(1) : String(n)) + " " + u[i];
    }
  };

  // live refreshes one region from its URL (an HTML fragment) every
  // data-live-every ms, backing off on errors and pausing in hidden tabs.
  function live(el) {
    var url = el.getAttribute("data-live");
    var every = parseInt(el.getAttribute("data-live-every"), 10) || 5000;
    var timer = null, failures = 0, busy = false;
    function schedule() {
      clearTimeout(timer);
      var wait = failures ? Math.min(every * Math.pow(2, failures), 60000) : every;
      timer = setTimeout(refresh, wait);
    }
    function refresh() {
      if (busy) return;
      // Keep a keyboard user's focus: skip a turn while it is inside
      // (content rendered by the server counts as loaded too).
      var a = document.activeElement;
      if (document.hidden || (a && a !== document.body && el.contains(a))) {
        schedule();
        return;
      }
      busy = true;
      fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (res) {
          if (res.status === 401) { location.reload(); throw new Error("signed out"); }
          if (!res.ok) throw new Error("HTTP " + res.status);
          return res.text();
        })
        .then(function (html) {
          el.innerHTML = html;
          el.dataset.loaded = "true";
          failures = 0;
        })
        .catch(function (err) {
          failures++;
          var st = el.querySelector("[data-live-state]");
          if (st) st.textContent = "· could not refresh (" + err.message + "), retrying";
          el.dataset.stale = "true";
        })
        .finally(function () { busy = false; schedule(); });
    }
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
    if (el.getAttribute("data-live-load") === "true") refresh(); else schedule();
  }
  document.querySelectorAll("[data-live]").forEach(live);

  // A submitted form's button says what is happening (creating a space
  // with a clone can take a while).
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var label = f.getAttribute("data-busy-label");
    var b = f.querySelector("button[type=submit]");
    if (!label || !b) return;
    setTimeout(function () { b.disabled = true; b.textContent = label; }, 0);
  });
})();

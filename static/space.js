// Space page: CPU and memory charts from the stats route, and the web
// terminal (xterm.js over the terminal WebSocket of docs/TERMINAL.md).
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  var bytes = Clawdspace.bytes;

  // draw plots values (0..top) as a polyline in the svg's 300x60 box.
  function draw(svg, values, top) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    [15, 30, 45].forEach(function (y) {
      var l = document.createElementNS(SVG, "line");
      l.setAttribute("class", "grid");
      l.setAttribute("x1", "0"); l.setAttribute("x2", "300");
      l.setAttribute("y1", String(y)); l.setAttribute("y2", String(y));
      svg.appendChild(l);
    });
    if (values.length < 2) return;
    var pts = values.map(function (v, i) {
      // The window grows to five minutes, so the first samples show.
      var span = Math.max(20, values.length) - 1;
      var x = 300 - (values.length - 1 - i) * (300 / span);
      var y = 58 - Math.min(1, v / top) * 56;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    var p = document.createElementNS(SVG, "polyline");
    p.setAttribute("points", pts.join(" "));
    svg.appendChild(p);
  }

  var MAX_SAMPLES = 100; // 5 minutes at one sample every 3 s
  var charts = document.querySelector("[data-stats]");
  if (charts) {
    var url = charts.getAttribute("data-stats");
    var cpu = [], mem = [];
    var cpuSvg = charts.querySelector('[data-chart="cpu"]'), memSvg = charts.querySelector('[data-chart="mem"]');
    var cpuVal = charts.querySelector('[data-chart-value="cpu"]'), memVal = charts.querySelector('[data-chart-value="mem"]');
    var sample = function () {
      if (document.hidden) { setTimeout(sample, 3000); return; }
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (j) {
          var s = j.stats;
          var mp = s.memoryLimitBytes ? (s.memoryUsageBytes * 100) / s.memoryLimitBytes : 0;
          cpu.push(s.cpuPercent); mem.push(mp);
          if (cpu.length > MAX_SAMPLES) { cpu.shift(); mem.shift(); }
          draw(cpuSvg, cpu, Math.max(100, Math.max.apply(null, cpu)));
          draw(memSvg, mem, 100);
          cpuVal.textContent = s.cpuPercent.toFixed(1) + "%";
          memVal.textContent = bytes(s.memoryUsageBytes) + " of " + bytes(s.memoryLimitBytes) + " (" + mp.toFixed(0) + "%)";
          charts.dataset.samples = String(cpu.length);
        })
        .catch(function (e) { cpuVal.textContent = "unavailable (" + e.message + ")"; })
        .finally(function () { setTimeout(sample, 3000); });
    };
    draw(cpuSvg, [], 100); draw(memSvg, [], 100);
    sample();
  }

  var box = document.querySelector("[data-term]");
  if (!box || typeof Terminal === "undefined") return;
  var space = box.getAttribute("data-space");
  var status = document.querySelector("[data-term-status]");
  var btnConnect = document.querySelector("[data-term-connect]");
  var btnDisconnect = document.querySelector("[data-term-disconnect]");
  var term = null, fit = null, ws = null, pingTimer = null, retryTimer = null;
  var retries = 0, wanted = false;
  var MAX_RETRIES = 8;

  function setStatus(text, cls) {
    status.textContent = text;
    status.className = "term-status " + (cls || "muted");
  }
  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }
  function ensureTerm() {
    if (term) return;
    term = new Terminal({
      cursorBlink: true, fontSize: 14, scrollback: 5000,
      fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace',
      theme: { background: "#000000" }
    });
    fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    fitNow();
    // xterm takes Tab for the shell; Esc then Tab (or Shift+Tab) moves the
    // focus out instead, so the terminal is no keyboard trap. Esc itself
    // still goes to the shell (vi needs it).
    var escaped = false;
    term.attachCustomKeyEventHandler(function (e) {
      if (e.type !== "keydown" || e.key === "Shift") return true;
      if (e.key === "Tab" && escaped) { escaped = false; return false; }
      escaped = e.key === "Escape";
      return true;
    });
    term.onData(function (d) { send({ type: "input", data: d }); });
    term.onResize(function (s) { send({ type: "resize", cols: s.cols, rows: s.rows }); });
    // The TTY follows the browser window (and a phone's rotation).
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(fitNow, 100);
    });
  }
  // fitNow sizes the terminal to its box and notes the window width it
  // fitted (tests wait for it after a resize).
  function fitNow() {
    try { fit.fit(); } catch (e) { /* hidden */ }
    box.setAttribute("data-fit-width", String(window.innerWidth));
  }
  // reachable asks the API whether the space is still there for this
  // user before a reconnect: a refused or missing space will not come
  // back by trying again.
  function reachable() {
    return fetch("/api/spaces/" + encodeURIComponent(space), { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) return "You are signed out. Reload the page to sign in.";
        if (r.status === 403) return "You may not open a terminal in " + space + ".";
        if (r.status === 404) return "The space " + space + " is gone.";
        return "";
      })
      .catch(function () { return ""; });
  }
  function stop(text) {
    wanted = false;
    setStatus(text, "error");
    btnConnect.hidden = false; btnDisconnect.hidden = true;
  }
  function connect() {
    wanted = true;
    clearTimeout(retryTimer);
    ensureTerm();
    fitNow();
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var q = new URLSearchParams({ cols: String(term.cols), rows: String(term.rows) });
    setStatus(retries ? "Reconnecting…" : "Connecting…", retries ? "warn" : "muted");
    btnConnect.hidden = true;
    btnDisconnect.hidden = false;
    ws = new WebSocket(proto + "//" + location.host + "/api/spaces/" + encodeURIComponent(space) + "/terminal?" + q);
    ws.binaryType = "arraybuffer";
    ws.onopen = function () {
      if (retries) term.write("\r\n\x1b[2m[reconnected: a new shell]\x1b[0m\r\n");
      retries = 0;
      setStatus("Connected to a shell in " + space + ". Closing this page ends it. Esc then Tab moves the focus out.", "ok");
      box.setAttribute("data-connected", "true");
      term.focus();
      pingTimer = setInterval(function () { send({ type: "ping" }); }, 25000);
    };
    ws.onmessage = function (e) {
      if (typeof e.data === "string") return; // {"type":"pong"}
      term.write(new Uint8Array(e.data));
    };
    ws.onclose = function (e) {
      clearInterval(pingTimer);
      box.setAttribute("data-connected", "false");
      if (!wanted) {
        setStatus("Disconnected. The shell was ended.");
        btnConnect.hidden = false; btnDisconnect.hidden = true;
        return;
      }
      if (e.code === 1000) {
        wanted = false;
        var why = e.reason || "The shell ended";
        term.write("\r\n\x1b[2m[" + why + "]\x1b[0m\r\n");
        setStatus(why + ". Connect to start a new shell.");
        btnConnect.hidden = false; btnDisconnect.hidden = true;
        return;
      }
      retries++;
      var why = e.reason || "code " + e.code;
      if (retries > MAX_RETRIES) {
        stop("Could not reach the terminal (" + why + "). Check the space, then connect again.");
        return;
      }
      setStatus("Connection lost (" + why + "). Checking the space…", "warn");
      reachable().then(function (refused) {
        if (!wanted) return;
        if (refused) { stop("Could not open the terminal: " + refused); return; }
        var delay = Math.min(1000 * Math.pow(2, retries - 1), 15000);
        setStatus("Connection lost (" + why + "). Reconnecting in " + Math.round(delay / 1000) + " s…", "warn");
        retryTimer = setTimeout(connect, delay);
      });
    };
  }
  btnConnect.addEventListener("click", function () { retries = 0; connect(); });
  btnDisconnect.addEventListener("click", function () {
    wanted = false;
    clearTimeout(retryTimer);
    if (ws) ws.close(1000, "Closed in the dashboard");
    btnConnect.hidden = false; btnDisconnect.hidden = true;
    setStatus("Disconnected. The shell was ended.");
  });
  if (box.getAttribute("data-autoconnect") === "true") connect();
})();

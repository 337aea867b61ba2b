// Fleet page: the spaces of every node, from GET /api/spaces?all=true.
// Each action goes to the space's own node with ?node=NAME.
(function () {
  "use strict";
  var box = document.querySelector("[data-fleet-spaces]");
  if (!box) return;
  // status announces actions and failures only (aria-live); the time of
  // the last refresh goes to a quiet line.
  var status = document.querySelector("[data-fleet-status]");
  var updated = document.querySelector("[data-fleet-updated]");
  var errorsBox = document.querySelector("[data-fleet-errors]");
  // What the user may do, as far as this node can tell; each node still
  // decides for its own spaces.
  var canExec = box.getAttribute("data-can-exec") === "true";
  var canDestroy = box.getAttribute("data-can-destroy") === "true";
  var icons = { running: "▶", paused: "⏸", stopped: "■" };
  // Server-rendered: read once.
  var self = box.getAttribute("data-self") || "";
  var urls = {};
  try { urls = JSON.parse(box.getAttribute("data-node-urls") || "{}"); } catch (e) { urls = {}; }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    return e;
  }
  var bytes = Clawdspace.bytes;
  function act(sp, method, path, label, button) {
    var q = sp.node ? "?node=" + encodeURIComponent(sp.node) : "";
    if (path.indexOf("?") >= 0 && q) q = "&" + q.slice(1);
    button.disabled = true;
    status.textContent = label + " " + sp.name + "…";
    fetch("/api/spaces/" + encodeURIComponent(sp.name) + path + q, { method: method, credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || "HTTP " + r.status); }); })
      .then(function () { status.textContent = label + " " + sp.name + ": done."; load(); })
      .catch(function (e) { status.textContent = label + " " + sp.name + " failed: " + e.message; button.disabled = false; });
  }
  function render(list) {
    box.textContent = "";
    if (!list.length) {
      box.appendChild(el("p", { "class": "empty", "data-testid": "fleet-empty" }, "No spaces on any node yet. Create one from New space."));
      return;
    }
    var t = el("table", { "class": "stack", "data-testid": "fleet-table" });
    var head = el("tr");
    ["Node", "Name", "Status", "Resources", ""].forEach(function (h) { head.appendChild(el("th", { scope: "col" }, h)); });
    t.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    list.forEach(function (sp) {
      var tr = el("tr", { "data-testid": "fleet-row", "data-space": sp.name, "data-node": sp.node || "" });
      tr.appendChild(el("td", { "data-label": "Node" }, sp.node || "this node"));
      var name = el("td", { "data-label": "Name" });
      if (sp.local) name.appendChild(el("a", { href: "/spaces/" + encodeURIComponent(sp.name) }, sp.name));
      else if (urls[sp.node]) name.appendChild(el("a", { href: urls[sp.node] + "/spaces/" + encodeURIComponent(sp.name), title: "Open on " + sp.node }, sp.name));
      else name.textContent = sp.name;
      tr.appendChild(name);
      var st = el("td", { "data-label": "Status" });
      var badge = el("span", { "class": "badge badge-" + sp.status, "data-status": sp.status });
      badge.appendChild(el("span", { "aria-hidden": "true" }, (icons[sp.status] || "?") + " "));
      badge.appendChild(document.createTextNode(sp.status));
      st.appendChild(badge);
      tr.appendChild(st);
      tr.appendChild(el("td", { "data-label": "Resources" }, bytes(sp.memory) + " · " + sp.cpus + " CPU" + (sp.gpu ? " · GPU" : "")));
      var actions = el("td", { "data-label": "Actions", "class": "actions" });
      var where = sp.node ? " on " + sp.node : "";
      if (canExec) {
        var verb = sp.status === "running" ? "Pause" : "Start";
        var toggle = el("button", { type: "button", "data-testid": "fleet-toggle", "aria-label": verb + " " + sp.name + where }, verb);
        toggle.addEventListener("click", function () {
          if (sp.status === "running") act(sp, "POST", "/stop", "Pausing", toggle);
          else act(sp, "POST", "/start", "Starting", toggle);
        });
        actions.appendChild(toggle);
      }
      if (canDestroy) {
        var destroy = el("button", { type: "button", "class": "danger", "data-testid": "fleet-destroy", "aria-label": "Destroy " + sp.name + where }, "Destroy");
        destroy.addEventListener("click", function () {
          if (destroy.dataset.armed !== "true") {
            destroy.dataset.armed = "true";
            destroy.textContent = "Confirm destroy";
            destroy.setAttribute("aria-label", "Confirm: destroy " + sp.name + where);
            return;
          }
          act(sp, "DELETE", "?removeVolume=false", "Destroying", destroy);
        });
        actions.appendChild(destroy);
      }
      tr.appendChild(actions);
      body.appendChild(tr);
    });
    t.appendChild(body);
    box.appendChild(t);
  }
  // showErrors lists the nodes that could not be asked for their spaces.
  function showErrors(errs) {
    errorsBox.textContent = "";
    (errs || []).forEach(function (e) {
      var p = el("p", { "class": "notice error", role: "alert", "data-testid": "fleet-node-error", "data-node": e.node || "" });
      p.appendChild(el("span", { "aria-hidden": "true" }, "⚠ "));
      p.appendChild(document.createTextNode("Could not reach " + (e.node || "a node") + ": " + (e.error || "no answer") + "."));
      errorsBox.appendChild(p);
    });
  }
  // focused says the keyboard focus is inside the table: a refresh then
  // waits, so the focus (and an armed "Confirm destroy") stays.
  function focused() {
    var a = document.activeElement;
    return a && a !== document.body && box.contains(a);
  }
  function load() {
    fetch("/api/spaces?all=true", { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || "HTTP " + r.status); return j; }); })
      .then(function (j) {
        var list = (j.spaces || []).map(function (sp) {
          sp.local = !sp.node || sp.node === self;
          return sp;
        });
        list.sort(function (a, b) { return (a.node || "").localeCompare(b.node || "") || a.name.localeCompare(b.name); });
        render(list);
        showErrors(j.errors);
        updated.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
        box.dataset.loaded = "true";
      })
      .catch(function (e) { status.textContent = "Could not load the fleet's spaces: " + e.message + ". Retrying."; });
  }
  load();
  setInterval(function () { if (!document.hidden && !focused()) load(); }, 10000);
})();

// leasehold dashboard: live countdowns, live updates over Server-Sent Events, timeline zoom.
// No network polling: the page fetches itself again only when the server says the ledger changed.
(function () {
  "use strict";
  var body = document.body;
  var offset = 0; // server clock minus this browser's clock, in seconds

  function syncClock() {
    var now = parseFloat(body.getAttribute("data-now"));
    if (!isNaN(now)) { offset = now - Date.now() / 1000; }
  }

  function left(seconds) {
    var whole = Math.floor(Math.abs(seconds));
    var h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    var text = h ? h + "h " + pad(m) + "m" : (m ? m + "m " + pad(s) + "s" : s + "s");
    return seconds > 0 ? text + " left" : "expired " + text + " ago";
  }

  function tick() {
    var now = Date.now() / 1000 + offset;
    var items = document.querySelectorAll("[data-until]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var remaining = parseFloat(el.getAttribute("data-until")) - now;
      el.textContent = left(remaining);
      if (remaining <= 0 && !el.classList.contains("is-expired")) {
        el.classList.add("is-expired");
        var row = el.closest(".lease");
        if (row && !row.classList.contains("expired")) {
          row.classList.add("expired");
          var count = document.getElementById("expired-count");
          if (count && row.hasAttribute("data-lease") && row.tagName === "TR") {
            count.textContent = String((parseInt(count.textContent, 10) || 0) + 1);
            document.getElementById("expired-note").hidden = false;
          }
          var badge = row.querySelector(".badge-expired");
          if (badge) { badge.hidden = false; }
        }
      }
    }
  }

  function say(text) {
    var status = document.getElementById("live-status");
    if (status) { status.textContent = text; }
  }

  // -- timeline zoom --------------------------------------------------------------------------
  var zoom = 1;
  function applyZoom() {
    var svg = document.getElementById("timeline");
    if (svg) { svg.setAttribute("width", (zoom * 100) + "%"); }
    var level = document.getElementById("zoom-level");
    if (level) { level.textContent = "×" + zoom; }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-zoom]") : null;
    if (!button) { return; }
    var how = button.getAttribute("data-zoom");
    zoom = how === "in" ? Math.min(zoom * 2, 64) : how === "out" ? Math.max(zoom / 2, 1) : 1;
    applyZoom();
  });

  // -- live updates ---------------------------------------------------------------------------
  var busy = false, again = false, source = null, release = null, last = null;

  // This tab's stream is over for good (signed out, or refused): close it and, if it served the
  // other tabs, let another tab (perhaps one signed in again) take the lock and open its own.
  function stop() {
    if (source) { source.close(); }
    if (release) { release(); release = null; last = null; }
  }

  function focusKey(el) {
    if (!el || el === document.body) { return null; }
    return el.id ? "#" + el.id : (el.getAttribute("href") ? "a[href='" + el.getAttribute("href") + "']" : null);
  }

  // At most two fetches a second (after a burst of three): a busy fleet moves the event log's
  // head up to ten times a second, and every open tab fetching its page at each move would keep
  // the server rendering. Changes now and then are fetched at once.
  var RATE = 2, BURST = 3, tokens = BURST, filled = Date.now(), timer = null;

  function refresh() {
    if (busy) { again = true; return; }
    var now = Date.now();
    tokens = Math.min(BURST, tokens + (now - filled) * RATE / 1000);
    filled = now;
    if (tokens < 1) {
      if (!timer) {
        timer = window.setTimeout(function () { timer = null; refresh(); }, (1 - tokens) * 1000 / RATE);
      }
      return;
    }
    tokens -= 1;
    busy = true;
    var key = focusKey(document.activeElement);
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || response.status === 401) {
          say("Signed out: sign in again to see live updates.");
          stop();
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null || html === undefined) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live"), current = document.getElementById("live");
        if (!fresh || !current) { return; }
        current.replaceWith(document.importNode(fresh, true));
        body.setAttribute("data-now", doc.body.getAttribute("data-now"));
        var stamp = document.getElementById("rendered-at"), fresher = doc.getElementById("rendered-at");
        if (stamp && fresher) { stamp.textContent = fresher.textContent; }
        body.setAttribute("data-head", doc.body.getAttribute("data-head"));
        syncClock();
        tick();
        applyZoom();
        if (key) {
          var again_el = document.querySelector(key);
          if (again_el) { again_el.focus(); }
        }
        say("Updated " + new Date().toISOString().slice(11, 19) + " UTC.");
      })
      .catch(function () { say("Could not update; will try again on the next change."); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  // One event stream for all the dashboard's tabs of this browser: a browser opens at most six
  // connections to a server (HTTP/1.1), so a stream per tab would leave the seventh tab hanging.
  // The tab holding the lock (Web Locks) opens the stream and relays it to the others
  // (BroadcastChannel); when that tab closes, another takes the lock and the stream over.
  function listen() {
    if (!body.hasAttribute("data-live") || !window.EventSource) { return; }
    var seen = parseInt(body.getAttribute("data-head"), 10) || 0;
    function deliver(type, data) {
      if (type === "open") { say("Live: updates arrive as the ledger changes."); return; }
      if (type === "error") { say("Connection lost; reconnecting…"); return; }
      if (type === "closed") { say("Live updates stopped; reload the page."); return; }
      if (type === "signed-out") { say("Signed out: sign in again to see live updates."); return; }
      var head = JSON.parse(data).head;
      if (type === "change" || head !== seen) { refresh(); }
      seen = head;
    }
    if (!(navigator.locks && window.BroadcastChannel)) { open(deliver); return; }
    var channel = new BroadcastChannel("leasehold-events"), leading = false;
    channel.onmessage = function (event) {
      var message = event.data || {};
      if (message.type === "ask") {
        if (leading && last !== null) { channel.postMessage({ type: "hello", data: last }); }
        return;
      }
      deliver(message.type, message.data);
    };
    navigator.locks.request("leasehold-events", function () {
      leading = true;
      open(function (type, data) { channel.postMessage({ type: type, data: data }); deliver(type, data); });
      return new Promise(function (resolve) { release = resolve; }); // held while the stream lives
    });
    channel.postMessage({ type: "ask" }); // a stream already open elsewhere: its head, at once
  }

  function open(relay) {
    source = new EventSource("/ui/events");
    ["hello", "change", "signed-out"].forEach(function (type) {
      source.addEventListener(type, function (event) {
        if (type === "signed-out") { stop(); } else { last = event.data; }
        relay(type, event.data);
      });
    });
    source.onerror = function () {
      var closed = source.readyState === 2;
      if (closed) { stop(); }
      relay(closed ? "closed" : "error", null);
    };
    source.onopen = function () { relay("open", null); };
  }

  syncClock();
  tick();
  applyZoom();
  window.setInterval(tick, 1000); // the countdowns: a local clock, no request
  listen();
})();

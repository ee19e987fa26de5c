// probed status page: filters the rows in the browser and keeps them up to date by polling
// /api/v1/status (its period is the body's data-refresh, in seconds). Without this script the
// page still works: the filter is a GET form and a reload shows the latest state.
(function () {
  "use strict";
  var body = document.body;
  var ICONS = { ok: "\u2713", warn: "!", fail: "\u2717", unknown: "?", pending: "\u2026" };
  var STATUSES = ["ok", "warn", "fail", "unknown", "pending"];
  var form = document.getElementById("filter");
  var q = document.getElementById("q");
  var select = document.getElementById("status");
  var none = document.getElementById("none");
  var offset = 0; // server clock minus ours, in ms, from the Date header
  var pos = {}; // check name -> index in list
  var list = [];
  var prev = [];
  var texts = []; // per row of list: data-text, data-status and its group's index, read once
  var statuses = [];
  var groupOf = [];
  var groups = [];

  function index() {
    pos = {};
    list = [];
    prev = [];
    texts = [];
    statuses = [];
    groupOf = [];
    groups = Array.prototype.slice.call(document.querySelectorAll("section.group"));
    for (var g = 0; g < groups.length; g++) {
      var found = groups[g].querySelectorAll("tr[data-check]");
      for (var i = 0; i < found.length; i++) {
        var row = found[i];
        pos[row.getAttribute("data-check")] = list.length;
        list.push(row);
        prev.push(null);
        texts.push(row.getAttribute("data-text"));
        statuses.push(row.getAttribute("data-status"));
        groupOf.push(g);
      }
    }
  }

  function ago(iso) {
    if (!iso) return "never";
    var s = Math.max(0, Math.floor((Date.now() + offset - Date.parse(iso)) / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function duration(d) {
    // as probed.phase.format_elapsed writes it on the server
    if (d === null || d === undefined) return "-";
    if (!(d >= 0)) return "0 ms";
    if (d < 1) return (d * 1000).toFixed(1) + " ms";
    if (d < 10) return d.toFixed(2) + "s";
    if (d < 60) return d.toFixed(1) + "s";
    var s = Math.round(d), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + "h" : "") + (m ? m + "m" : "") + (s % 60 ? (s % 60) + "s" : "");
  }

  function uptime(u) {
    if (u === null || u === undefined) return "-";
    if (u >= 1) return "100%";
    if (u >= 0.9995) return "99.9%";
    return (u * 100).toFixed(1) + "%";
  }

  function applyFilter() {
    if (!form) return;
    // data-text is HTML-escaped in the page but read back unescaped: compare plain text
    var needle = q.value.trim().toLowerCase();
    var status = select.value;
    var shown = 0;
    var inGroup = groups.map(function () { return 0; });
    for (var i = 0; i < list.length; i++) {
      var match = (!status || statuses[i] === status) &&
        (!needle || texts[i].indexOf(needle) !== -1);
      if (list[i].hidden === match) list[i].hidden = !match;
      if (match) { shown++; inGroup[groupOf[i]]++; }
    }
    for (var g = 0; g < groups.length; g++) {
      var any = inGroup[g] > 0;
      if (groups[g].hidden === any) groups[g].hidden = !any;
    }
    if (none) none.hidden = shown > 0 || list.length === 0;
    var params = new URLSearchParams();
    if (needle) params.set("q", q.value.trim());
    if (status) params.set("status", status);
    var search = params.toString();
    history.replaceState(null, "", search ? "?" + search : location.pathname);
  }

  function tick() {
    var times = document.querySelectorAll("td.since time");
    for (var i = 0; i < times.length; i++) {
      times[i].textContent = ago(times[i].getAttribute("datetime"));
    }
  }

  function setSummary(counts, total) {
    var parts = [];
    for (var i = 0; i < STATUSES.length; i++) {
      if (counts[STATUSES[i]]) parts.push(counts[STATUSES[i]] + " " + STATUSES[i]);
    }
    var el = document.getElementById("counts");
    var text = total + " checks" + (parts.length ? ": " + parts.join(", ") : "");
    if (el && el.textContent !== text) el.textContent = text; // a live region: only on change
    var updated = document.getElementById("updated");
    if (updated) {
      var now = new Date(Date.now() + offset);
      updated.setAttribute("datetime", now.toISOString());
      updated.textContent = now.toISOString().slice(11, 19) + " UTC";
      updated.classList.remove("stale");
    }
  }

  function isoOf(unix) {
    return unix ? new Date(unix * 1000).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
  }

  function update(data) {
    var counts = {};
    for (var i = 0; i < data.checks.length; i++) {
      var c = data.checks[i];
      counts[c.status] = (counts[c.status] || 0) + 1;
      var at = pos[c.name];
      if (at === undefined) return false; // a new check: the list itself changed
      var row = list[at];
      var was = prev[at];
      prev[at] = c;
      if (was && was.status === c.status && was.message === c.message &&
          was.duration_seconds === c.duration_seconds && was.uptime === c.uptime &&
          was.since === c.since) {
        continue; // unchanged since the last poll
      }
      if (row.getAttribute("data-status") !== c.status) {
        row.setAttribute("data-status", c.status);
        var badge = row.querySelector(".badge");
        badge.className = "badge s-" + c.status;
        badge.textContent = ICONS[c.status] + " " + c.status;
      }
      row.querySelector("td.msg").textContent = c.message;
      row.querySelector("td.dur").textContent = duration(c.duration_seconds);
      row.querySelector("td.up").textContent = uptime(c.uptime);
      row.querySelector("td.since time").setAttribute("datetime", isoOf(c.since));
      var text = (c.name + " " + (c.group === "other" ? "" : c.group) + " " +
        c.message).toLowerCase();
      row.setAttribute("data-text", text);
      texts[at] = text;
      statuses[at] = c.status;
    }
    if (data.checks.length !== list.length) return false; // a check went away
    setSummary(counts, data.checks.length);
    tick();
    applyFilter();
    return true;
  }

  function reloadList() {
    // checks were added or removed (a reload): fetch the page again and swap the groups in
    return fetch(location.pathname, { headers: { Accept: "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("groups");
        var mine = document.getElementById("groups");
        if (fresh && mine) mine.replaceWith(fresh);
        var counts = doc.getElementById("counts");
        if (counts) document.getElementById("counts").textContent = counts.textContent;
        index();
        tick();
        applyFilter();
      });
  }

  var etag = null;
  var busy = false;
  function poll() {
    if (busy) return;
    busy = true;
    var headers = { Accept: "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(body.getAttribute("data-json"), { headers: headers, cache: "no-cache" })
      .then(function (r) {
        var date = r.headers.get("Date");
        if (date) offset = Date.parse(date) + 500 - Date.now();
        if (r.status === 304) { setSummary(countsNow(), list.length); tick(); return null; }
        if (!r.ok) throw new Error("HTTP " + r.status);
        etag = r.headers.get("ETag");
        return r.json();
      })
      .then(function (data) {
        if (data && !update(data)) return reloadList();
      })
      .catch(function () {
        // said in words too, not only by the colour
        var updated = document.getElementById("updated");
        if (updated && !updated.classList.contains("stale")) {
          updated.classList.add("stale");
          updated.textContent += " (probed cannot be reached; retrying)";
        }
      })
      .then(function () { busy = false; });
  }

  function countsNow() {
    var counts = {};
    for (var i = 0; i < list.length; i++) {
      var s = list[i].getAttribute("data-status");
      counts[s] = (counts[s] || 0) + 1;
    }
    return counts;
  }

  index();
  if (form) {
    form.addEventListener("submit", function (e) { e.preventDefault(); applyFilter(); });
    var pending = false;
    var schedule = function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; applyFilter(); });
    };
    q.addEventListener("input", schedule);
    select.addEventListener("change", schedule);
  }
  function pollPage() {
    // a check's page: fetch it again; swap <main> in only when the check changed
    if (busy) return;
    busy = true;
    fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-cache" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var mine = document.getElementById("main");
        if (fresh && mine &&
            fresh.getAttribute("data-version") !== mine.getAttribute("data-version")) {
          mine.replaceWith(fresh);
        }
        document.documentElement.classList.remove("stale");
      })
      .catch(function () { document.documentElement.classList.add("stale"); })
      .then(function () { busy = false; });
  }

  var refresh = parseFloat(body.getAttribute("data-refresh") || "0");
  if (refresh > 0 && body.getAttribute("data-json")) {
    tick();
    setInterval(poll, refresh * 1000);
  } else if (refresh > 0 && body.getAttribute("data-poll") === "page") {
    setInterval(pollPage, refresh * 1000);
  }
})();

// The incident page, live: countdowns tick every second, state.json is polled for status,
// deadlines and action outcomes. Plain JavaScript, no build step, no inline script (CSP).
(function () {
  "use strict";
  var page = document.getElementById("page");
  if (!page) { return; }
  var stateUrl = page.getAttribute("data-state-url");
  // The server's clock, not the reader's: a laptop that is minutes off must not move deadlines.
  var offset = Date.parse(page.getAttribute("data-now")) - Date.now();
  var POLL_MS = 5000;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // The same words as webhooks/incident_page_view.py in_words.
  function inWords(seconds) {
    var whole = Math.floor(Math.abs(seconds));
    var span;
    if (whole < 60) { span = whole + " s"; }
    else if (whole < 3600) { span = Math.floor(whole / 60) + " min " + pad(whole % 60) + " s"; }
    else if (whole < 48 * 3600) {
      span = Math.floor(whole / 3600) + " h " + pad(Math.floor((whole % 3600) / 60)) + " min";
    } else {
      span = Math.floor(whole / 86400) + " days " + Math.floor((whole % 86400) / 3600) + " h";
    }
    return seconds >= 0 ? "in " + span : span + " overdue";
  }

  // The reader's own time beside the UTC one the server wrote; nothing when the reader is on UTC.
  function localTimes() {
    var nodes = document.querySelectorAll(".local[data-at]");
    for (var i = 0; i < nodes.length; i++) {
      var at = new Date(nodes[i].getAttribute("data-at"));
      if (isNaN(at.getTime()) || at.getTimezoneOffset() === 0) { continue; }
      nodes[i].textContent = at.toLocaleString(undefined, {
        weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
        timeZoneName: "short"
      }) + " \u00b7 ";
    }
  }

  function setLeft(node, seconds) {
    var left = node.querySelector(".left");
    if (!left) { return; }
    var overdue = seconds < 0;
    left.textContent = (overdue ? "\u26a0 " : "") + inWords(seconds);
    node.classList.toggle("deadline-overdue", overdue);
    node.classList.toggle("deadline-running", !overdue);
  }

  function tick() {
    var now = Date.now() + offset;
    var nodes = document.querySelectorAll("[data-due][data-live='1']");
    for (var i = 0; i < nodes.length; i++) {
      var due = Date.parse(nodes[i].getAttribute("data-due"));
      if (!isNaN(due)) { setLeft(nodes[i], (due - now) / 1000); }
    }
  }

  function text(id, value) {
    var node = document.getElementById(id);
    if (node && node.textContent !== value) { node.textContent = value; }
  }

  function apply(state) {
    offset = Date.parse(state.now) - Date.now();
    text("status-words", state.status_words);
    text("status-ack", state.acknowledged_by ?
      ", by " + state.acknowledged_by + " (" + state.acknowledged_utc + ")" : "");
    var status = document.getElementById("status");
    if (status) { status.className = "status status-" + state.status; }
    state.deadlines.forEach(function (d) {
      var row = document.getElementById("deadline-" + d.kind);
      if (!row) { return; }
      row.setAttribute("data-due", d.due);
      row.setAttribute("data-live", d.live ? "1" : "0");
      if (!d.live) {
        row.className = "deadline-" + d.state;
        var left = row.querySelector(".left");
        if (left) { left.textContent = d.words; }
      }
    });
    var next = document.getElementById("next-deadline");
    if (next && state.next_deadline) {
      next.setAttribute("data-due", state.next_deadline.due);
      var what = next.querySelector(".what");
      if (what) { what.textContent = state.next_deadline.label; }
    } else if (next && !state.next_deadline) {
      next.setAttribute("data-live", "0");
      next.className = "big";
      next.textContent = "None running";
    }
    state.proposals.forEach(function (p) {
      text("pstatus-" + p.id, p.status_words);
      text("outcome-" + p.id, p.outcome);
      var card = document.getElementById("proposal-" + p.id);
      var form = card ? card.querySelector("form.decide") : null;
      if (form && !p.waiting) { form.hidden = true; }
    });
    text("poll-state", "");
    tick();
  }

  function poll() {
    if (!stateUrl || !window.fetch) { return; }
    fetch(stateUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(apply)
      .catch(function (err) {
        text("poll-state", "Live updates paused (" + err.message + "); the times still count.");
      });
  }

  localTimes();
  tick();
  window.setInterval(tick, 1000);
  window.setInterval(poll, POLL_MS);
})();

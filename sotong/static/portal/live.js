/* The overview's live update (portal/overview.html). About every second it asks
   /live/overview.json with If-None-Match, so an unchanged overview costs a 304, and writes
   each number into the element whose data-figure names it ("today.received",
   "month.district.종로구.overdue"); a line that appears in a table by dimension after the
   page was drawn is added from the table's <template>. The status line (aria-live polite)
   changes only when a figure does, so screen readers hear it then and not every second.
   The charts and the newest cases (data-live-block) are fetched again with the page at
   most every 30 seconds after a change, at an address naming the figures' time, so that
   the server's micro-cache (a second old at most) cannot answer with a copy drawn before
   the change. Polling stops while the tab is hidden. Without
   JavaScript the page refreshes itself every minute (noscript in its head). */
(function () {
  "use strict";

  var root = document.querySelector("[data-live-url]");
  if (!root || !window.fetch) {
    return;
  }
  var url = root.getAttribute("data-live-url");
  var statusTime = document.querySelector("[data-live-time]");
  var POLL_MS = 1000;
  var RETRY_MS = 10000;
  var BLOCKS_MS = 30000;
  var etag = null;
  var timer = null;
  var blocksDue = false;
  var changedAt = null; // as_of of the figures that last changed
  var blocksAt = Date.now();

  function flatten(period, figures, out) {
    var name;
    for (name in figures.counts) {
      out[period + "." + name] = figures.counts[name];
    }
    out[period + ".on_time_share"] = figures.on_time_share;
    out[period + ".median_hours"] = figures.median_hours;
    out[period + ".p90_hours"] = figures.p90_hours;
    figures.answer_times.forEach(function (bin) {
      out[period + ".answer_time." + bin.bin] = bin.answered;
    });
    Object.keys(figures.by).forEach(function (dimension) {
      figures.by[dimension].forEach(function (line) {
        Object.keys(line).forEach(function (measure) {
          if (measure !== "key" && measure !== "label") {
            out[period + "." + dimension + "." + line.key + "." + measure] = line[measure];
          }
        });
      });
    });
  }

  function format(value, kind) {
    if (value === null || value === undefined) {
      return kind === "count" ? "0" : "—";
    }
    // As the page's server writes them (Cell.text in sotong/portal/views.py).
    if (kind === "share") {
      return Math.floor(value * 100 + 0.5) + "%";
    }
    if (kind === "hours") {
      return (Math.floor(value * 10 + 0.5) / 10).toFixed(1);
    }
    return Number(value).toLocaleString("en-US");
  }

  function addLines(figures) {
    var tables = document.querySelectorAll("table[data-dimension]");
    Array.prototype.forEach.call(tables, function (table) {
      var dimension = table.getAttribute("data-dimension");
      var template = table.parentNode.querySelector("template[data-row-template]");
      var body = table.tBodies[0];
      if (!template || !body || !figures.by[dimension]) {
        return;
      }
      var shown = {};
      Array.prototype.forEach.call(body.rows, function (row) {
        shown[row.getAttribute("data-key")] = true;
      });
      figures.by[dimension].forEach(function (line) {
        if (shown[line.key]) {
          return;
        }
        var row = template.content.firstElementChild.cloneNode(true);
        row.setAttribute("data-key", line.key);
        row.querySelector("th").textContent = line.label;
        Array.prototype.forEach.call(row.querySelectorAll("[data-cell]"), function (cell) {
          cell.setAttribute("data-figure", cell.getAttribute("data-cell").replace("{key}", line.key));
          cell.removeAttribute("data-cell");
        });
        body.appendChild(row);
        shown[line.key] = true;
        var note = table.parentNode.querySelector(".empty-note");
        if (note) {
          note.hidden = true;
        }
      });
    });
  }

  function apply(data) {
    var values = {};
    flatten("today", data.today, values);
    flatten("month", data.month, values);
    addLines(data.month);
    var changed = false;
    var cells = document.querySelectorAll("[data-figure]");
    Array.prototype.forEach.call(cells, function (cell) {
      var name = cell.getAttribute("data-figure");
      var value = Object.prototype.hasOwnProperty.call(values, name) ? values[name] : null;
      var text = format(value, cell.getAttribute("data-format") || "count");
      if (cell.textContent !== text) {
        cell.textContent = text;
        changed = true;
      }
    });
    return changed;
  }

  function announce(asOf) {
    if (statusTime && asOf) {
      statusTime.setAttribute("datetime", asOf);
      statusTime.textContent = asOf.substring(11, 19);
    }
  }

  function refreshBlocks() {
    blocksDue = false;
    blocksAt = Date.now();
    var address = new URL(window.location.href);
    address.searchParams.set("live", changedAt || String(Date.now()));
    fetch(address.toString(), { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var blocks = document.querySelectorAll("[data-live-block]");
        Array.prototype.forEach.call(blocks, function (block) {
          var name = block.getAttribute("data-live-block");
          var replacement = fresh.querySelector('[data-live-block="' + name + '"]');
          // Never pull the focus from under someone reading or tabbing through a block.
          if (replacement && !block.contains(document.activeElement)) {
            block.replaceWith(document.importNode(replacement, true));
          }
        });
      })
      .catch(function () {
        blocksDue = true;
      });
  }

  function schedule(delay) {
    window.clearTimeout(timer);
    if (!document.hidden) {
      timer = window.setTimeout(poll, delay);
    }
  }

  function poll() {
    var headers = { Accept: "application/json" };
    if (etag) {
      headers["If-None-Match"] = etag;
    }
    fetch(url, { headers: headers, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 304) {
          return null;
        }
        if (!response.ok) {
          throw new Error("overview " + response.status);
        }
        etag = response.headers.get("ETag");
        return response.json();
      })
      .then(function (data) {
        if (data && apply(data)) {
          announce(data.as_of);
          changedAt = data.as_of;
          blocksDue = true;
        }
        if (blocksDue && Date.now() - blocksAt >= BLOCKS_MS) {
          refreshBlocks();
        }
        schedule(POLL_MS);
      })
      .catch(function () {
        schedule(RETRY_MS);
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      window.clearTimeout(timer);
    } else {
      poll();
    }
  });
  schedule(POLL_MS);
})();

/* tidal dashboard behaviour: local times, sortable and filterable tables, run selection for
 * compare, charts from the page's embedded data, a live log tail and live page regions.
 * Live parts read the REST API (/api/v1/...) and stop once the run or job is over. */
(function () {
  "use strict";

  const root = document.body.dataset.root || "";
  const LOG_POLL_MS = 1000;
  const METRICS_POLL_MS = 5000;
  const LIVE_BUCKETS = 64;  // a poll's new points per key, at most about twice this: a live tab stays cheap
  const REGION_POLL_MS = 2500;

  function readJson(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function isLive() { return document.body.dataset.live === "1"; }

  // ---- times: the server writes UTC; show the reader's local time ----
  function localTimes(scope) {
    scope.querySelectorAll("time[data-local]").forEach(function (element) {
      const date = new Date(element.getAttribute("datetime"));
      if (!Number.isNaN(date.getTime())) {
        element.title = element.textContent;
        element.textContent = date.toLocaleString(undefined, {year: "numeric", month: "2-digit", day: "2-digit",
          hour: "2-digit", minute: "2-digit", second: "2-digit"});
      }
    });
  }

  // ---- sortable tables: th[data-sort=text|number], cells carry data-value ----
  function cellValue(row, column, numeric) {
    const cell = row.cells[column];
    const raw = cell ? (cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim()) : "";
    return numeric ? parseFloat(raw) || 0 : raw.toLowerCase();
  }

  function sortTable(table, header) {
    const column = header.cellIndex;
    const numeric = header.dataset.sort === "number";
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (other) { other.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const left = cellValue(a, column, numeric), right = cellValue(b, column, numeric);
      const order = left < right ? -1 : left > right ? 1 : 0;
      return ascending ? order : -order;
    });
    body.append(...rows);
  }

  function sortableTables(scope) {
    scope.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("th[data-sort]").forEach(function (header) {
        if (header.dataset.sortDefault) header.setAttribute("aria-sort", header.dataset.sortDefault === "desc" ? "descending" : "ascending");
        header.addEventListener("click", function () { sortTable(table, header); });
      });
    });
  }

  // ---- quick filters: input[data-quick-filter=selector] hides rows or list items not matching ----
  function quickFilters() {
    document.querySelectorAll("input[data-quick-filter]").forEach(function (input) {
      const target = document.querySelector(input.dataset.quickFilter);
      if (!target) return;
      const apply = function () {
        const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
        const entries = target.tBodies ? Array.from(target.tBodies[0].rows) : Array.from(target.children);
        let shown = 0;
        entries.forEach(function (entry) {
          const text = entry.textContent.toLowerCase();
          const match = words.every(function (word) { return text.includes(word); });
          entry.hidden = !match;
          if (match) shown++;
        });
        const note = target.parentElement.querySelector(".empty-filter");
        if (note) note.hidden = shown > 0;
      };
      input.addEventListener("input", apply);
    });
  }

  // ---- run selection → compare ----
  function runSelection() {
    const table = document.getElementById("runs-table");
    const button = document.getElementById("compare-button");
    if (!table || !button) return;
    const count = document.getElementById("selection-count");
    const boxes = function () { return Array.from(table.querySelectorAll("tbody input[name=run]")); };
    const refresh = function () {
      const chosen = boxes().filter(function (box) { return box.checked; });
      boxes().forEach(function (box) { box.closest("tr").classList.toggle("selected", box.checked); });
      button.disabled = chosen.length < 2;
      count.textContent = chosen.length ? chosen.length + " selected" : "select two or more runs to compare";
    };
    table.addEventListener("change", refresh);
    const all = table.querySelector("input[data-select-all]");
    all.addEventListener("change", function () {
      boxes().forEach(function (box) { if (!box.closest("tr").hidden) box.checked = all.checked; });
      refresh();
    });
    button.addEventListener("click", function () {
      const ids = boxes().filter(function (box) { return box.checked; }).map(function (box) { return box.value; });
      window.location.href = button.dataset.compareUrl + "?ids=" + ids.map(encodeURIComponent).join(",");
    });
    refresh();
  }

  // ---- charts: series arrive cut to the chart's width; a live page fetches only what is new ----
  function runCharts() {
    const metrics = readJson("metrics-data");
    const section = document.getElementById("metrics");
    if (!metrics || !section) return;
    const sampled = new Set(JSON.parse(section.dataset.sampled || "[]"));
    const run = root + "/api/v1/runs/" + encodeURIComponent(document.body.dataset.runId);
    const api = run + "/metrics/sampled";
    const charts = {};
    let phases = readJson("phases-data") || [];
    const zoom = function (key) {
      return function (start, end, axis, buckets) {
        const query = "?keys=" + encodeURIComponent(key) + "&buckets=" + buckets + "&axis=" + axis +
          "&start=" + start + "&end=" + end;
        return fetch(api + query)
          .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
          .then(function (body) { return {points: body.metrics[key] || [], sampled: body.sampled.includes(key)}; });
      };
    };
    const draw = function (figure, points) {
      const key = figure.dataset.key;
      charts[key] = new TidalCharts.LineChart(figure, {series: [{name: key, points: points}], phases: phases,
                                                       sampled: sampled.has(key), zoom: zoom(key)});
    };
    document.querySelectorAll("figure.chart[data-key]").forEach(function (figure) {
      draw(figure, metrics[figure.dataset.key] || []);
    });
    if (!isLive()) return;
    let cursor = section.dataset.cursor || "0";
    const poll = function () {
      const wasLive = isLive();  // one more poll after the run ends picks up its last points
      fetch(api + "?buckets=" + LIVE_BUCKETS + "&after=" + cursor)
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          if (!body) return;
          cursor = String(body.last);
          body.sampled.forEach(function (key) { sampled.add(key); });
          Object.keys(body.metrics).sort().forEach(function (key) {
            if (charts[key]) charts[key].append(body.metrics[key]);
            else draw(newChart(section, key), body.metrics[key]);
          });
          // a run with phases (a training records its first as it starts) may begin or end one: its stats say
          if (phases.length) return fetch(run);
        })
        .then(function (response) { return response && response.ok ? response.json() : null; })
        .then(function (body) {
          const fresh = body && body.stats && Array.isArray(body.stats.phases) ? body.stats.phases : [];
          if (!body || JSON.stringify(fresh) === JSON.stringify(phases)) return;
          phases = fresh;
          Object.keys(charts).forEach(function (key) { charts[key].setPhases(phases); });
        })
        .catch(function () { /* the next poll tries again */ })
        .finally(function () { if (wasLive) setTimeout(poll, METRICS_POLL_MS); });
    };
    setTimeout(poll, METRICS_POLL_MS);
  }

  // a chart for a key first logged after the page loaded, in its group ("train/loss" → "train")
  function newChart(section, key) {
    const prefix = key.includes("/") ? key.split("/")[0] : "";
    const title = {"": "Metrics", "system": "System resources"}[prefix] || prefix;
    let group = Array.from(section.querySelectorAll(".charts[data-group]")).find(function (element) {
      return element.dataset.group === title;
    });
    if (!group) {
      const empty = section.querySelector("p.muted");
      if (empty) { empty.previousElementSibling.remove(); empty.remove(); }
      const heading = document.createElement("h2");
      heading.textContent = title;
      group = document.createElement("div");
      group.className = "charts";
      group.dataset.group = title;
      section.append(heading, group);
    }
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.key = key;
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "chart-title";
    name.textContent = key;
    const label = document.createElement("label");
    label.className = "chart-log";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.dataset.logScale = "";
    label.append(box, document.createTextNode(" log"));
    caption.append(name, label);
    const body = document.createElement("div");
    body.className = "chart-body";
    figure.append(caption, body);
    group.append(figure);
    return figure;
  }

  function compareCharts() {
    const series = readJson("compare-data");
    if (!series) return;
    const palette = TidalCharts.PALETTE;
    document.querySelectorAll(".swatch[data-run-index]").forEach(function (swatch) {
      swatch.style.background = palette[Number(swatch.dataset.runIndex) % palette.length];
    });
    document.querySelectorAll("figure.chart[data-key]").forEach(function (figure) {
      const runs = series[figure.dataset.key] || [];
      new TidalCharts.LineChart(figure, {series: runs.map(function (one) {
        return {name: one.name, points: one.points, color: palette[one.run % palette.length]};
      })});
    });
    document.querySelectorAll("input[data-only-differences]").forEach(function (toggle) {
      toggle.addEventListener("change", function () {
        document.querySelectorAll("table.diff-table").forEach(function (table) {
          table.classList.toggle("only-differences", toggle.checked);
        });
      });
    });
  }

  // ---- log tail ----
  function logTail() {
    const log = document.getElementById("log-tail");
    if (!log) return;
    document.querySelectorAll("input[data-stream-toggle]").forEach(function (toggle) {
      toggle.addEventListener("change", function () {
        log.classList.toggle("hide-" + toggle.dataset.streamToggle, !toggle.checked);
      });
    });
    const follow = document.getElementById("log-follow");
    log.scrollTop = log.scrollHeight;
    if (log.dataset.live !== "1") return;
    const runId = document.body.dataset.runId;
    const poll = function () {
      const wasLive = isLive();
      fetch(root + "/api/v1/runs/" + encodeURIComponent(runId) + "/logs?after=" + (log.dataset.after || "0"))
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) { if (body) appendLogs(log, body, follow && follow.checked); })
        .catch(function () { /* the next poll tries again */ })
        .finally(function () {
          if (wasLive) { setTimeout(poll, LOG_POLL_MS); return; }
          const state = document.getElementById("log-state");
          if (state) state.textContent = "run ended";
        });
    };
    setTimeout(poll, LOG_POLL_MS);
  }

  function appendLogs(log, body, follow) {
    if (!body.logs || !body.logs.length) return;
    const empty = document.getElementById("log-empty");
    if (empty) empty.remove();
    body.logs.forEach(function (chunk) {
      const span = document.createElement("span");
      span.className = (chunk.stream === "stderr" ? "stderr" : "stdout") + " fresh";
      span.textContent = chunk.text;
      log.appendChild(span);
    });
    log.dataset.after = String(body.last !== undefined ? body.last : body.logs[body.logs.length - 1].id);
    if (follow) log.scrollTop = log.scrollHeight;
  }

  // ---- live regions: refetch and swap [data-live-region] elements while live; a region with
  // data-live-src (the run page's head) reads that small fragment, not the whole page again ----
  function liveRegions() {
    const first = document.querySelector("[data-live-region]");
    if (!isLive() || !first) return;
    const source = first.dataset.liveSrc || window.location.href;
    const refresh = function () {
      fetch(source, {headers: {"Accept": "text/html"}})
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          const fresh = new DOMParser().parseFromString(html, "text/html");
          document.querySelectorAll("[data-live-region]").forEach(function (region) {
            const replacement = fresh.getElementById(region.id);
            if (replacement) {
              region.replaceWith(replacement);
              localTimes(replacement);
              sortableTables(replacement);
            }
          });
          const live = first.dataset.liveSrc ? (fresh.querySelector("[data-live]") || {dataset: {}}).dataset.live
                                             : fresh.body.dataset.live;
          document.body.dataset.live = live;
          if (live !== "1") {
            const dot = document.querySelector(".live-dot");
            if (dot) dot.remove();
          }
        })
        .catch(function () { /* the next refresh tries again */ })
        .finally(function () { if (isLive()) setTimeout(refresh, REGION_POLL_MS); });
    };
    setTimeout(refresh, REGION_POLL_MS);
  }

  localTimes(document);
  sortableTables(document);
  quickFilters();
  runSelection();
  runCharts();
  compareCharts();
  logTail();
  liveRegions();
})();

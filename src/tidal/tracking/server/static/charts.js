/* tidal line charts: a small canvas chart written for the dashboard (no library).
 *
 *   const chart = new TidalCharts.LineChart(figure, {series: [{name, color, points}]});
 *   chart.update(series);   // new data, keeping which series are hidden
 *
 *   chart.append(points);   // a live page's new points (one series), thinned to the width when too many
 *
 * `figure` holds a `.chart-body` (the canvas goes there) and optionally an
 * `input[data-log-scale]` checkbox. Drag across a chart to zoom into that range, double-click to
 * zoom out. With `options.zoom(start, end, axis, buckets)` (a promise of {points, sampled}) a zoom
 * fetches the range again at full resolution: the server sends long series cut to the chart's width
 * (min and max per pixel, so spikes stay), which `options.sampled` says. Points are [step, value, timestamp] as the REST API sends
 * them; a value is a number or one of the strings "NaN", "Infinity", "-Infinity". Non-finite
 * values break the line and are drawn as markers on the plot's edge (NaN: a cross at the bottom,
 * +inf: a triangle at the top, -inf: a triangle at the bottom). When every point has a step
 * the x axis is the step, otherwise the seconds since the series' first point.
 *
 * `options.phases` (or `chart.setPhases(phases)`) shades a run's phases, as its stats record them
 * (`tidal train`: one per cycle): [{name, start_step, end_step}], end_step absent while the phase
 * is still going. Each is a band from its start step with a boundary line and its name on top,
 * drawn behind the canvas as elements (`.chart-phase[data-phase-start]`) that follow the zoom;
 * a chart whose x axis is time (no steps) shows none. Malformed entries are skipped.
 */
(function () {
  "use strict";

  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
                   "#db2777", "#4d7c0f", "#9333ea", "#ea580c", "#0f766e", "#64748b"];
  const PAD = {top: 10, right: 14, bottom: 24, left: 56};
  const HOVER_PIXELS = 40;  // a series farther than this from the cursor is left out of the tooltip

  function toNumber(value) {
    if (typeof value === "number") return value;
    if (value === "Infinity") return Infinity;
    if (value === "-Infinity") return -Infinity;
    return NaN;  // "NaN", null, anything else
  }

  function normalise(points, byStep, origin) {
    const first = origin !== undefined ? origin : (points.length ? points[0][2] : 0);
    const out = points.map(function (point, index) {
      const step = point[0];
      const x = byStep ? step : (point[2] - first);
      return {x: x, y: toNumber(point[1]), step: step, index: index};
    });
    out.sort(function (a, b) { return a.x - b.x || a.index - b.index; });
    return out;
  }

  // min and max per x bucket (and every non-finite point): what a chart `width` pixels wide can show
  function decimate(points, byStep, width) {
    if (points.length <= 4 * width) return points;
    const xOf = function (point) { return byStep ? point[0] : point[2]; };
    let low = Infinity, high = -Infinity;
    points.forEach(function (point) { low = Math.min(low, xOf(point)); high = Math.max(high, xOf(point)); });
    const span = (high - low) || 1;
    const buckets = new Map();
    points.forEach(function (point) {
      const index = Math.min(width - 1, Math.floor((xOf(point) - low) / span * width));
      const value = toNumber(point[1]);
      let bucket = buckets.get(index);
      if (!bucket) { bucket = {low: null, high: null, odd: []}; buckets.set(index, bucket); }
      if (!Number.isFinite(value)) { bucket.odd.push(point); return; }
      if (bucket.low === null || value < toNumber(bucket.low[1])) bucket.low = point;
      if (bucket.high === null || value > toNumber(bucket.high[1])) bucket.high = point;
    });
    const kept = [];
    Array.from(buckets.keys()).sort(function (a, b) { return a - b; }).forEach(function (index) {
      const bucket = buckets.get(index);
      const ends = [bucket.low, bucket.high].filter(Boolean).sort(function (a, b) { return xOf(a) - xOf(b); });
      kept.push(...bucket.odd, ...(ends.length === 2 && ends[0] === ends[1] ? [ends[0]] : ends));
    });
    return kept;
  }

  // a run's phases as bands {name, start, end, index} sorted by start; end null: still open (the
  // next phase's start closes it when it has none); entries without a numeric start_step skipped
  function phaseBands(phases) {
    if (!Array.isArray(phases)) return [];
    const bands = phases.filter(function (phase) {
      return phase !== null && typeof phase === "object" && Number.isFinite(phase.start_step);
    }).map(function (phase, index) {
      const named = typeof phase.name === "string" && phase.name !== "";
      return {name: named ? phase.name : "phase " + (index + 1), start: phase.start_step,
              end: Number.isFinite(phase.end_step) ? phase.end_step : null};
    });
    bands.sort(function (a, b) { return a.start - b.start; });
    bands.forEach(function (band, index) {
      band.index = index;
      if (band.end === null && index + 1 < bands.length) band.end = bands[index + 1].start;
    });
    return bands;
  }

  function formatNumber(value) {
    if (Number.isNaN(value)) return "NaN";
    if (value === Infinity) return "+∞";
    if (value === -Infinity) return "−∞";
    const size = Math.abs(value);
    if (size !== 0 && (size >= 1e5 || size < 1e-3)) return value.toExponential(2);
    return String(Number(value.toPrecision(5)));
  }

  function formatSeconds(seconds) {
    if (seconds < 120) return Math.round(seconds) + "s";
    if (seconds < 7200) return Math.round(seconds / 60) + "m";
    return (seconds / 3600).toFixed(1) + "h";
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const fraction = raw / power;
    const nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
    return nice * power;
  }

  function linearTicks(low, high, count) {
    const step = niceStep(high - low, count);
    const ticks = [];
    for (let tick = Math.ceil(low / step) * step; tick <= high + step * 1e-9; tick += step) {
      ticks.push(Math.abs(tick) < step * 1e-9 ? 0 : tick);
    }
    return ticks;
  }

  function logTicks(low, high) {
    const ticks = [];
    for (let power = Math.floor(Math.log10(low)); power <= Math.ceil(Math.log10(high)); power++) {
      const tick = Math.pow(10, power);
      if (tick >= low * 0.999 && tick <= high * 1.001) ticks.push(tick);
    }
    return ticks.length >= 2 ? ticks : [low, high];
  }

  class LineChart {
    constructor(figure, options) {
      this.figure = figure;
      this.body = figure.querySelector(".chart-body") || figure;
      this.phaseLayer = document.createElement("div");  // before the canvas: bands lie under the lines
      this.phaseLayer.className = "chart-phases";
      this.body.appendChild(this.phaseLayer);
      this.phases = phaseBands(options.phases);
      this.canvas = document.createElement("canvas");
      this.body.appendChild(this.canvas);
      this.tooltip = document.createElement("div");
      this.tooltip.className = "chart-tooltip";
      this.tooltip.hidden = true;
      this.body.appendChild(this.tooltip);
      this.legend = document.createElement("div");
      this.legend.className = "chart-legend";
      figure.appendChild(this.legend);
      this.note = document.createElement("div");
      this.note.className = "chart-note";
      figure.appendChild(this.note);
      this.logScale = false;
      this.hidden = new Set();
      this.hover = null;
      this.drag = null;
      this.view = null;  // the zoomed x range, or null: everything
      this.options = options;
      this.sampled = Boolean(options.sampled);
      this.listen(figure.querySelector("input[data-log-scale]"));
      this.update(options.series);
      figure.tidalChart = this;
    }

    append(points) {
      if (!points.length) return;
      const one = this.raw[0];
      const merged = one.points.concat(points);
      const width = Math.max(100, this.body.clientWidth || 600);
      const byStep = merged.every(function (point) { return point[0] !== null && point[0] !== undefined; });
      const thinned = decimate(merged, byStep, width);
      if (thinned.length < merged.length) this.sampled = true;
      const view = this.view, zoomed = this.zoomed;
      this.update([{name: one.name, color: one.color, points: thinned}]);
      if (zoomed) { this.view = view; this.zoomed = zoomed; this.draw(); }
    }

    setPhases(phases) {
      this.phases = phaseBands(phases);
      this.phaseKey = null;
      this.draw();
    }

    zoomTo(low, high) {
      this.view = {low: low, high: high};
      this.figure.dataset.zoomed = "1";
      this.draw();
      if (!this.options.zoom || !this.sampled || this.series.length !== 1) return;
      const chart = this, byStep = this.byStep, origin = this.origin;
      const start = byStep ? Math.ceil(low) : origin + low, end = byStep ? Math.floor(high) : origin + high;
      this.options.zoom(start, end, byStep ? "step" : "time", Math.max(100, Math.round(this.body.clientWidth)))
        .then(function (found) {
          if (chart.view === null || chart.view.low !== low) return;  // zoomed out (or elsewhere) meanwhile
          chart.zoomed = {points: normalise(found.points, byStep, origin), sampled: found.sampled};
          chart.figure.dataset.zoomed = found.sampled ? "sampled" : "full";
          chart.draw();
        })
        .catch(function () { chart.figure.dataset.zoomed = "failed"; });
    }

    resetZoom() {
      this.view = null;
      this.zoomed = null;
      delete this.figure.dataset.zoomed;
      this.draw();
    }

    listen(logToggle) {
      const chart = this;
      this.canvas.addEventListener("mousemove", function (event) { chart.onMove(event); });
      this.canvas.addEventListener("mouseleave", function () { chart.hover = null; chart.drag = null; chart.draw(); });
      this.canvas.addEventListener("mousedown", function (event) {
        chart.drag = {from: chart.hover ? chart.hover.x : event.offsetX, to: null};
      });
      this.canvas.addEventListener("mouseup", function () {
        const drag = chart.drag;
        chart.drag = null;
        if (!drag || drag.to === null || Math.abs(drag.to - drag.from) < 5 || !chart.scale) { chart.draw(); return; }
        const scale = chart.scale;
        chart.zoomTo(scale.xValue(Math.min(drag.from, drag.to)), scale.xValue(Math.max(drag.from, drag.to)));
      });
      this.canvas.addEventListener("dblclick", function () { chart.resetZoom(); });
      if (logToggle) {
        logToggle.addEventListener("change", function () { chart.logScale = logToggle.checked; chart.draw(); });
      }
      if (window.ResizeObserver) {
        new ResizeObserver(function () { chart.draw(); }).observe(this.body);
      }
    }

    update(series) {
      const byStep = series.every(function (one) {
        return one.points.every(function (point) { return point[0] !== null && point[0] !== undefined; });
      });
      this.byStep = byStep;
      this.raw = series;
      let origin = Infinity;
      if (!byStep) series.forEach(function (one) { one.points.forEach(function (p) { origin = Math.min(origin, p[2]); }); });
      this.origin = Number.isFinite(origin) ? origin : 0;
      const chart = this;
      this.series = series.map(function (one, index) {
        return {name: one.name, color: one.color || PALETTE[index % PALETTE.length],
                points: normalise(one.points, byStep, byStep ? undefined : chart.origin)};
      });
      this.zoomed = null;
      this.renderLegend();
      this.renderNote();
      this.draw();
    }

    visibleSeries() {
      const hidden = this.hidden;
      const shown = this.series.filter(function (one) { return !hidden.has(one.name); });
      if (this.zoomed && shown.length === 1) return [{name: shown[0].name, color: shown[0].color, points: this.zoomed.points}];
      return shown;
    }

    renderLegend() {
      const chart = this;
      this.legend.replaceChildren();
      if (this.series.length < 2) return;
      this.series.forEach(function (one) {
        const entry = document.createElement("button");
        entry.type = "button";
        entry.title = "show or hide this series";
        entry.className = chart.hidden.has(one.name) ? "off" : "";
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = one.color;
        entry.append(swatch, document.createTextNode(one.name));
        entry.addEventListener("click", function () {
          if (chart.hidden.has(one.name)) chart.hidden.delete(one.name); else chart.hidden.add(one.name);
          entry.classList.toggle("off", chart.hidden.has(one.name));
          chart.draw();
        });
        chart.legend.appendChild(entry);
      });
    }

    renderNote() {
      let nan = 0, inf = 0;
      this.series.forEach(function (one) {
        one.points.forEach(function (point) {
          if (Number.isNaN(point.y)) nan++; else if (!Number.isFinite(point.y)) inf++;
        });
      });
      const parts = [];
      if (nan) parts.push(nan + " NaN");
      if (inf) parts.push(inf + " infinite");
      const notes = parts.length ? [parts.join(", ") + " shown as markers on the edge"] : [];
      if (this.sampled) notes.push("min and max per pixel: drag to zoom in at full resolution, double-click to zoom out");
      this.note.textContent = notes.join(" · ");
    }

    plottable(value) {
      return Number.isFinite(value) && (!this.logScale || value > 0);
    }

    scales(width, height) {
      let xLow = Infinity, xHigh = -Infinity, yLow = Infinity, yHigh = -Infinity;
      const chart = this;
      const view = this.view;
      this.visibleSeries().forEach(function (one) {
        one.points.forEach(function (point) {
          if (view && (point.x < view.low || point.x > view.high)) return;
          xLow = Math.min(xLow, point.x); xHigh = Math.max(xHigh, point.x);
          if (chart.plottable(point.y)) { yLow = Math.min(yLow, point.y); yHigh = Math.max(yHigh, point.y); }
        });
      });
      if (view) { xLow = view.low; xHigh = view.high; } else if (Number.isFinite(xLow)) {
        this.shownPhases().forEach(function (band) {  // a run's charts all span its phases
          xLow = Math.min(xLow, band.start); xHigh = Math.max(xHigh, band.end === null ? band.start : band.end);
        });
      }
      if (!Number.isFinite(xLow)) { xLow = 0; xHigh = 1; }
      if (xLow === xHigh) { xLow -= 1; xHigh += 1; }
      if (!Number.isFinite(yLow)) { yLow = this.logScale ? 1 : 0; yHigh = this.logScale ? 10 : 1; }
      if (this.logScale) {
        if (yLow === yHigh) { yLow /= 2; yHigh *= 2; }
      } else {
        const margin = yLow === yHigh ? Math.abs(yLow) * 0.1 || 1 : (yHigh - yLow) * 0.05;
        yLow -= margin; yHigh += margin;
      }
      const plot = {left: PAD.left, top: PAD.top, right: width - PAD.right, bottom: height - PAD.bottom};
      const log = this.logScale;
      const yFraction = log
        ? function (y) { return (Math.log10(y) - Math.log10(yLow)) / (Math.log10(yHigh) - Math.log10(yLow)); }
        : function (y) { return (y - yLow) / (yHigh - yLow); };
      return {
        plot: plot, xLow: xLow, xHigh: xHigh, yLow: yLow, yHigh: yHigh,
        x: function (x) { return plot.left + (x - xLow) / (xHigh - xLow) * (plot.right - plot.left); },
        y: function (y) { return plot.bottom - yFraction(y) * (plot.bottom - plot.top); },
        xValue: function (pixel) { return xLow + (pixel - plot.left) / (plot.right - plot.left) * (xHigh - xLow); },
      };
    }

    draw() {
      const width = this.body.clientWidth, height = this.body.clientHeight;
      if (!width || !height) return;
      const ratio = window.devicePixelRatio || 1;
      if (this.canvas.width !== Math.round(width * ratio) || this.canvas.height !== Math.round(height * ratio)) {
        this.canvas.width = Math.round(width * ratio);
        this.canvas.height = Math.round(height * ratio);
      }
      const context = this.canvas.getContext("2d");
      context.setTransform(ratio, 0, 0, ratio, 0, 0);
      context.clearRect(0, 0, width, height);
      this.scale = this.scales(width, height);
      this.drawAxes(context, this.scale);
      this.drawPhases(this.scale);
      const chart = this;
      this.visibleSeries().forEach(function (one) { chart.drawSeries(context, chart.scale, one); });
      this.drawHover(context, this.scale);
      this.drawSelection(context, this.scale);
      this.figure.dataset.rendered = "1";
    }

    drawAxes(context, scale) {
      const plot = scale.plot;
      context.font = "11px system-ui, sans-serif";
      context.strokeStyle = "#eef0f3";
      context.fillStyle = "#6b7280";
      context.lineWidth = 1;
      const yTicks = this.logScale ? logTicks(scale.yLow, scale.yHigh) : linearTicks(scale.yLow, scale.yHigh, 5);
      context.textAlign = "right";
      context.textBaseline = "middle";
      yTicks.forEach(function (tick) {
        const y = Math.round(scale.y(tick)) + 0.5;
        context.beginPath(); context.moveTo(plot.left, y); context.lineTo(plot.right, y); context.stroke();
        context.fillText(formatNumber(tick), plot.left - 6, y);
      });
      const xTicks = linearTicks(scale.xLow, scale.xHigh, Math.max(2, Math.floor((plot.right - plot.left) / 80)));
      context.textAlign = "center";
      context.textBaseline = "top";
      const byStep = this.byStep;
      xTicks.forEach(function (tick) {
        if (byStep && !Number.isInteger(tick)) return;
        const x = Math.round(scale.x(tick)) + 0.5;
        context.beginPath(); context.moveTo(x, plot.top); context.lineTo(x, plot.bottom); context.stroke();
        context.fillText(byStep ? formatNumber(tick) : formatSeconds(tick), x, plot.bottom + 5);
      });
      context.strokeStyle = "#cbd5e1";
      context.beginPath();
      context.moveTo(plot.left + 0.5, plot.top); context.lineTo(plot.left + 0.5, plot.bottom + 0.5);
      context.lineTo(plot.right, plot.bottom + 0.5);
      context.stroke();
    }

    // the bands in the plot's current x range; rebuilt only when that range or the phases change
    drawPhases(scale) {
      const bands = this.shownPhases();
      const key = JSON.stringify([bands, scale.xLow, scale.xHigh, scale.plot]);
      if (key === this.phaseKey) return;
      this.phaseKey = key;
      const chart = this;
      this.phaseLayer.replaceChildren(...bands.map(function (band) { return chart.phaseElement(band, scale); })
        .filter(Boolean));
    }

    // none on a time axis (steps cannot be placed there) or an empty chart
    shownPhases() {
      const shown = this.byStep && this.visibleSeries().some(function (one) { return one.points.length; });
      return shown ? this.phases : [];
    }

    phaseElement(band, scale) {
      const end = band.end === null ? scale.xHigh : band.end;
      if (end <= scale.xLow || band.start >= scale.xHigh) return null;
      const left = scale.x(Math.max(band.start, scale.xLow)), right = scale.x(Math.min(end, scale.xHigh));
      const element = document.createElement("div");
      element.className = "chart-phase" + (band.index % 2 ? " odd" : "") + (band.start < scale.xLow ? " cut" : "");
      element.dataset.phaseStart = String(band.start);
      if (band.end !== null) element.dataset.phaseEnd = String(band.end);
      element.style.left = left + "px";
      element.style.width = Math.max(0, right - left) + "px";
      element.style.top = scale.plot.top + "px";
      element.style.height = (scale.plot.bottom - scale.plot.top) + "px";
      const label = document.createElement("span");
      label.className = "chart-phase-label";
      label.textContent = band.name;
      element.appendChild(label);
      return element;
    }

    // the phase a step belongs to: a boundary step starts the next phase
    phaseAt(step) {
      let found = null;
      this.phases.forEach(function (band) {
        if (band.start <= step && (band.end === null || step <= band.end)) found = band;
      });
      return found;
    }

    drawSeries(context, scale, one) {
      const chart = this;
      context.save();
      context.beginPath();
      context.rect(scale.plot.left, scale.plot.top - 6, scale.plot.right - scale.plot.left + 6,
                   scale.plot.bottom - scale.plot.top + 12);
      context.clip();
      context.strokeStyle = one.color;
      context.fillStyle = one.color;
      context.lineWidth = 1.8;
      context.lineJoin = "round";
      context.beginPath();
      let drawing = false;
      one.points.forEach(function (point) {
        if (!chart.plottable(point.y)) { drawing = false; return; }  // a gap in the line
        const x = scale.x(point.x), y = scale.y(point.y);
        if (drawing) context.lineTo(x, y); else context.moveTo(x, y);
        drawing = true;
      });
      context.stroke();
      const dots = one.points.length <= 60;
      one.points.forEach(function (point) {
        const x = scale.x(point.x);
        if (chart.plottable(point.y)) {
          if (dots) { context.beginPath(); context.arc(x, scale.y(point.y), 2.2, 0, 2 * Math.PI); context.fill(); }
        } else {
          chart.drawMarker(context, scale, x, point.y);
        }
      });
      context.restore();
    }

    drawMarker(context, scale, x, value) {
      const top = scale.plot.top, bottom = scale.plot.bottom;
      context.lineWidth = 1.6;
      context.beginPath();
      if (value === Infinity) {
        context.moveTo(x, top - 2); context.lineTo(x - 5, top + 7); context.lineTo(x + 5, top + 7);
        context.closePath(); context.fill();
      } else if (value === -Infinity || (this.logScale && Number.isFinite(value))) {
        context.moveTo(x, bottom + 2); context.lineTo(x - 5, bottom - 7); context.lineTo(x + 5, bottom - 7);
        context.closePath(); context.fill();
      } else {  // NaN: a cross standing on the x axis
        context.moveTo(x - 4, bottom - 9); context.lineTo(x + 4, bottom - 1);
        context.moveTo(x + 4, bottom - 9); context.lineTo(x - 4, bottom - 1);
        context.stroke();
      }
    }

    drawSelection(context, scale) {
      if (!this.drag || this.drag.to === null) return;
      const left = Math.max(scale.plot.left, Math.min(this.drag.from, this.drag.to));
      const right = Math.min(scale.plot.right, Math.max(this.drag.from, this.drag.to));
      context.fillStyle = "rgba(37, 99, 235, .12)";
      context.fillRect(left, scale.plot.top, right - left, scale.plot.bottom - scale.plot.top);
    }

    nearest(one, x) {
      const points = one.points;
      let low = 0, high = points.length - 1;
      if (high < 0) return null;
      while (high - low > 1) {
        const middle = (low + high) >> 1;
        if (points[middle].x < x) low = middle; else high = middle;
      }
      return Math.abs(points[low].x - x) <= Math.abs(points[high].x - x) ? points[low] : points[high];
    }

    onMove(event) {
      const bounds = this.canvas.getBoundingClientRect();
      this.hover = {x: event.clientX - bounds.left, y: event.clientY - bounds.top};
      if (this.drag) this.drag.to = this.hover.x;
      this.draw();
    }

    hoverPoints(scale) {
      const chart = this;
      const target = scale.xValue(this.hover.x);
      let best = null;
      this.visibleSeries().forEach(function (one) {
        const point = chart.nearest(one, target);
        if (point && (best === null || Math.abs(point.x - target) < Math.abs(best.x - target))) best = point;
      });
      if (best === null) return null;
      const found = [];
      this.visibleSeries().forEach(function (one) {
        const point = chart.nearest(one, best.x);
        if (point && Math.abs(scale.x(point.x) - scale.x(best.x)) <= HOVER_PIXELS) found.push({series: one, point: point});
      });
      return {x: best.x, step: best.step, found: found};
    }

    drawHover(context, scale) {
      if (!this.hover || this.hover.x < scale.plot.left || this.hover.x > scale.plot.right) {
        this.tooltip.hidden = true;
        return;
      }
      const hit = this.hoverPoints(scale);
      if (!hit) { this.tooltip.hidden = true; return; }
      const x = Math.round(scale.x(hit.x)) + 0.5;
      context.strokeStyle = "rgba(15, 23, 42, .35)";
      context.lineWidth = 1;
      context.beginPath(); context.moveTo(x, scale.plot.top); context.lineTo(x, scale.plot.bottom); context.stroke();
      const chart = this;
      hit.found.forEach(function (entry) {
        if (!chart.plottable(entry.point.y)) return;
        context.fillStyle = "#fff";
        context.strokeStyle = entry.series.color;
        context.lineWidth = 2;
        context.beginPath();
        context.arc(scale.x(entry.point.x), scale.y(entry.point.y), 4, 0, 2 * Math.PI);
        context.fill(); context.stroke();
      });
      this.showTooltip(hit, x);
    }

    showTooltip(hit, x) {
      const title = document.createElement("div");
      const phase = this.byStep ? this.phaseAt(hit.step) : null;
      title.textContent = this.byStep ? "step " + hit.step + (phase ? " · " + phase.name : "")
                                      : "t = " + formatSeconds(hit.x) + (hit.step !== null ? " · step " + hit.step : "");
      const rows = hit.found.map(function (entry) {
        const row = document.createElement("div");
        row.className = "row";
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = entry.series.color;
        row.append(swatch, document.createTextNode(entry.series.name + ": " + formatNumber(entry.point.y)));
        return row;
      });
      this.tooltip.replaceChildren(title, ...rows);
      this.tooltip.hidden = false;
      const width = this.body.clientWidth;
      const box = this.tooltip.getBoundingClientRect();
      const left = x + 12 + box.width > width ? x - 12 - box.width : x + 12;
      this.tooltip.style.left = Math.max(0, left) + "px";
      this.tooltip.style.top = Math.max(0, Math.min(this.hover.y - 10, this.body.clientHeight - box.height)) + "px";
    }
  }

  window.TidalCharts = {LineChart: LineChart, PALETTE: PALETTE, formatNumber: formatNumber, decimate: decimate,
                        phaseBands: phaseBands};
})();

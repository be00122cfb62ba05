// tastemaker dashboard: progressive enhancement, no dependencies.
// - forms marked data-live-form fetch their results (?partial=1) instead of reloading the page,
//   and keep the URL in step (history.replaceState), so a reload or a shared link shows the same;
// - inputs with data-suggest fill their <datalist> from the JSON API as you type;
// - the element with data-refresh reloads its content every data-interval ms (with a pause button).
(function () {
  "use strict";

  function announce(text) {
    var el = document.getElementById("announce");
    if (!el) return;
    el.textContent = "";
    window.setTimeout(function () { el.textContent = text; }, 30);
  }

  function debounce(fn, ms) {
    var t = null;
    return function () {
      var args = arguments, self = this;
      window.clearTimeout(t);
      t = window.setTimeout(function () { fn.apply(self, args); }, ms);
    };
  }

  function query(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string") params.append(key, value);
    });
    return params;
  }

  // --- live forms -------------------------------------------------------------------------------
  function liveForm(form) {
    var target = document.getElementById(form.getAttribute("data-target"));
    if (!target) return;
    var controller = null;
    var seq = 0;

    function load() {
      var params = query(form);
      var action = form.getAttribute("action");
      var url = action + "?" + params.toString();
      var mine = ++seq;
      if (controller) controller.abort();
      controller = typeof AbortController === "function" ? new AbortController() : null;
      target.setAttribute("aria-busy", "true");
      params.set("partial", "1");
      fetch(action + "?" + params.toString(), {
        headers: { "Accept": "text/html" },
        signal: controller ? controller.signal : undefined
      }).then(function (resp) {
        return resp.text().then(function (body) { return { ok: resp.ok, status: resp.status, body: body }; });
      }).then(function (res) {
        if (mine !== seq) return;
        if (!res.ok) throw new Error("the server answered " + res.status);
        target.innerHTML = res.body;
        target.setAttribute("aria-busy", "false");
        window.history.replaceState(null, "", url);
        var lists = target.querySelectorAll("ol.recs").length;
        announce(lists ? "Updated " + lists + " recommendation list" + (lists === 1 ? "" : "s") + "." : "Results updated.");
      }).catch(function (err) {
        if (err && err.name === "AbortError") return;
        target.setAttribute("aria-busy", "false");
        var alert = document.createElement("div");
        alert.className = "alert";
        alert.setAttribute("role", "alert");
        alert.textContent = "Could not update: " + (err && err.message ? err.message : err);
        target.prepend(alert);
      });
    }

    var soon = debounce(load, 220);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    form.addEventListener("change", function (ev) {
      var t = ev.target;
      if (t && t.hasAttribute("data-suggest")) return; // a text box: wait for submit (Enter) or a picked suggestion
      soon();
    });
    form.addEventListener("input", function (ev) {
      var t = ev.target;
      if (t && t.type === "range") soon();
    });
  }

  // --- range outputs ----------------------------------------------------------------------------
  function rangeOutput(input) {
    var out = document.querySelector('output[for="' + input.id + '"]');
    function show() {
      var v = Number(input.value).toFixed(2);
      if (out) out.textContent = v;
      input.setAttribute("aria-valuetext", "λ " + v);
    }
    input.addEventListener("input", show);
    show();
  }

  // --- suggestions ------------------------------------------------------------------------------
  function suggest(input) {
    var list = document.getElementById(input.getAttribute("list"));
    var url = input.getAttribute("data-suggest");
    var key = input.getAttribute("data-suggest-key");
    if (!list || !url) return;
    var last = null;
    var fill = debounce(function () {
      var q = input.value.trim();
      if (q === last) return;
      last = q;
      fetch(url + "?" + new URLSearchParams({ q: q, limit: "20" }).toString(), { headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data || input.value.trim() !== q) return;
          var values = data[key] || [];
          list.textContent = "";
          values.forEach(function (v) {
            var opt = document.createElement("option");
            if (typeof v === "string") { opt.value = v; }
            else { opt.value = v.item_id; opt.textContent = v.title; }
            list.appendChild(opt);
          });
        })
        .catch(function () { /* suggestions are a convenience; the form still works */ });
    }, 150);
    input.addEventListener("input", function (ev) {
      // a value picked from the list (not typed) submits the form at once
      if (ev.inputType === "insertReplacementText" || ev.inputType === undefined) {
        var picked = Array.prototype.some.call(list.options, function (o) { return o.value === input.value; });
        if (picked && input.form) { input.form.requestSubmit ? input.form.requestSubmit() : input.form.submit(); return; }
      }
      fill();
    });
  }

  // --- auto refresh -----------------------------------------------------------------------------
  function autoRefresh(panel) {
    var url = panel.getAttribute("data-refresh");
    var every = Math.max(500, Number(panel.getAttribute("data-interval")) || 3000);
    var button = document.getElementById("live-pause");
    var paused = false;
    var busy = false;
    var lastErrors = null;

    function errorsOf(root) {
      var el = root.querySelector("[data-errors]");
      return el ? Number(el.getAttribute("data-errors")) : null;
    }
    lastErrors = errorsOf(panel);

    function tick() {
      if (paused || busy || document.hidden) return;
      busy = true;
      panel.setAttribute("aria-busy", "true");
      fetch(url, { headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok) throw new Error("the server answered " + r.status); return r.text(); })
        .then(function (body) {
          panel.innerHTML = body;
          var errors = errorsOf(panel);
          if (errors !== null && lastErrors !== null && errors > lastErrors) {
            announce("Server errors rose to " + errors + ".");
          }
          lastErrors = errors;
        })
        .catch(function (err) { announce("Live update failed: " + (err && err.message ? err.message : err)); })
        .then(function () { busy = false; panel.setAttribute("aria-busy", "false"); });
    }
    var timer = window.setInterval(tick, every);
    if (button) {
      button.addEventListener("click", function () {
        paused = !paused;
        button.setAttribute("aria-pressed", paused ? "true" : "false");
        button.textContent = paused ? "Resume updates" : "Pause updates";
        announce(paused ? "Live updates paused." : "Live updates resumed.");
        if (!paused) tick();
      });
    }
    window.addEventListener("pagehide", function () { window.clearInterval(timer); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-live-form]"), liveForm);
    Array.prototype.forEach.call(document.querySelectorAll('input[type="range"]'), rangeOutput);
    Array.prototype.forEach.call(document.querySelectorAll("input[data-suggest]"), suggest);
    Array.prototype.forEach.call(document.querySelectorAll("[data-refresh]"), autoRefresh);
  });
}());

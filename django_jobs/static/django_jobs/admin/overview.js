// Auto-refresh for the django_jobs overview: fetches ?fragment=1 every
// data-refresh seconds and swaps the body in place. Pauses while the tab is
// hidden; the checkbox choice is remembered. No dependencies.
//
// A refresh in flight when the box is unchecked (or re-checked, or the tab
// hidden) must not replace the page afterwards: stop() aborts it and bumps
// `generation`, and a response from an older generation is dropped. The next
// refresh is scheduled only once the previous one is over, so two never race.
// After each attempt the root's data-last-refresh says what happened:
// "applied", "dropped" (paused meanwhile) or "failed".
(function () {
  "use strict";
  const root = document.getElementById("jobs-overview");
  if (!root) return;
  const seconds = parseInt(root.dataset.refresh || "0", 10);
  const toggle = document.getElementById("jobs-refresh-toggle");
  const status = document.getElementById("jobs-refresh-status");
  const KEY = "django_jobs.overview.autorefresh";
  let timer = null;
  let controller = null;
  let generation = 0;

  function enabled() {
    return seconds > 0 && (!toggle || toggle.checked) && !document.hidden;
  }

  function done(outcome) {
    root.dataset.lastRefresh = outcome;
  }

  async function refresh() {
    timer = null;
    const mine = generation;
    controller = new AbortController();
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    try {
      const response = await fetch(url, { credentials: "same-origin", signal: controller.signal });
      if (response.redirected) {
        window.location.reload(); // session expired: show the login page
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const html = await response.text();
      if (mine !== generation) {
        done("dropped");
        return;
      }
      root.innerHTML = html;
      if (status) { status.textContent = ""; status.className = ""; }
      done("applied");
    } catch (error) {
      if (mine !== generation) {
        done("dropped"); // aborted by stop(): not an error
        return;
      }
      if (status) {
        status.textContent = "Refresh failed (" + error.message + "), retrying";
        status.className = "jobs-refresh-error";
      }
      done("failed");
    }
    if (mine === generation) schedule();
  }

  function schedule() {
    if (enabled()) timer = window.setTimeout(refresh, seconds * 1000);
  }

  function stop() {
    generation += 1;
    if (timer !== null) window.clearTimeout(timer);
    timer = null;
    if (controller !== null) controller.abort();
    controller = null;
  }

  function start() {
    stop();
    schedule();
  }

  if (toggle) {
    toggle.checked = window.localStorage.getItem(KEY) !== "off";
    toggle.addEventListener("change", function () {
      window.localStorage.setItem(KEY, toggle.checked ? "on" : "off");
      start();
    });
  }
  document.addEventListener("visibilitychange", function () {
    stop();
    if (enabled()) refresh(); // back on the tab: fresh numbers at once
  });
  start();
})();

// Auto-refresh for the django_jobs overview: fetches ?fragment=1 every
// data-refresh seconds and swaps the body in place. Pauses while the tab is
// hidden; the checkbox choice is remembered. No dependencies.
(function () {
  "use strict";
  const root = document.getElementById("jobs-overview");
  if (!root) return;
  const seconds = parseInt(root.dataset.refresh || "0", 10);
  const toggle = document.getElementById("jobs-refresh-toggle");
  const status = document.getElementById("jobs-refresh-status");
  const KEY = "django_jobs.overview.autorefresh";
  let timer = null;

  async function refresh() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.redirected) {
        window.location.reload(); // session expired: show the login page
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      root.innerHTML = await response.text();
      if (status) { status.textContent = ""; status.className = ""; }
    } catch (error) {
      if (status) {
        status.textContent = "Refresh failed (" + error.message + "), retrying";
        status.className = "jobs-refresh-error";
      }
    }
  }

  function stop() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }

  function start() {
    stop();
    if (seconds > 0 && (!toggle || toggle.checked)) {
      timer = window.setInterval(refresh, seconds * 1000);
    }
  }

  if (toggle) {
    toggle.checked = window.localStorage.getItem(KEY) !== "off";
    toggle.addEventListener("change", function () {
      window.localStorage.setItem(KEY, toggle.checked ? "on" : "off");
      start();
    });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      stop();
    } else if (!toggle || toggle.checked) {
      refresh();
      start();
    }
  });
  start();
})();

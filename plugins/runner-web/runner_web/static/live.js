// The run page follows its run: every 2 s it asks for the states and updates the page in
// place, until the run has ended. Plain JS, loaded from this server (the CSP allows nothing
// else).
(function () {
  const root = document.querySelector("[data-run]");
  if (!root) return;
  const run = root.getAttribute("data-run");
  async function tick() {
    let data;
    try {
      const r = await fetch(`/runs/${run}/progress.json`, { credentials: "same-origin" });
      if (!r.ok) return setTimeout(tick, 5000);
      data = await r.json();
    } catch (e) {
      return setTimeout(tick, 5000);
    }
    const set = (el, state) => { el.textContent = state; el.className = state; };
    document.querySelectorAll("[data-run-state]").forEach((el) => set(el, data.state));
    document.querySelectorAll("[data-progress]").forEach((el) => {
      el.textContent = `${data.done} of ${data.total}`;
    });
    document.querySelectorAll("[data-task]").forEach((el) => {
      const s = data.tasks[el.getAttribute("data-task")];
      if (s) set(el, s);
    });
    document.querySelectorAll("[data-counts]").forEach((el) => {
      const counts = data.counts[el.getAttribute("data-counts")] || {};
      const states = Object.keys(counts).sort();
      const total = states.reduce((n, s) => n + counts[s], 0);
      el.textContent = `${total} instance(s): `;
      states.forEach((s, k) => {
        const a = document.createElement("a");
        a.href = `/runs/${run}?state=${encodeURIComponent(s)}`;
        a.className = s;
        a.textContent = `${counts[s]} ${s}`;
        if (k) el.appendChild(document.createTextNode(" · "));
        el.appendChild(a);
      });
    });
    document.querySelectorAll("[data-instance]").forEach((el) => {
      const s = data.instances[el.getAttribute("data-instance")];
      if (s) set(el, s);
    });
    if (data.state === "running") return setTimeout(tick, 2000);
    // the run ended while the page was open: its final version (exit codes, reasons, the
    // retry button) replaces what the polls kept up to date, without leaving the page
    if (root.getAttribute("data-state") !== "running") return;
    document.querySelectorAll("[data-while-running]").forEach((el) => el.remove());
    try {
      const page = await fetch(window.location.href, { credentials: "same-origin" });
      const fresh = new DOMParser().parseFromString(await page.text(), "text/html")
        .querySelector("[data-run]");
      if (page.ok && fresh) root.replaceWith(document.adoptNode(fresh));
    } catch (e) {}
  }
  setTimeout(tick, 2000);
})();

// A log page tails its log: it asks for what lies past the end it has, every second.
(function () {
  const pre = document.querySelector("[data-tail]");
  if (!pre) return;
  const url = pre.getAttribute("data-tail");
  let next = 0;
  async function tail() {
    try {
      const r = await fetch(`${url}&offset=${next}`, { credentials: "same-origin" });
      if (r.ok) {
        const text = await r.text();
        if (text) pre.appendChild(document.createTextNode(text));
        next = parseInt(r.headers.get("X-Log-Next") || String(next), 10);
      }
    } catch (e) {}
    setTimeout(tail, 1000);
  }
  tail();
})();

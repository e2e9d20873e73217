// salesflow dashboard: draws the charts from the page's JSON, and refreshes the page's live
// parts when /api/state says the data changed (a file processed, a letter redriven...).
(function () {
  "use strict";
  const body = document.body;
  const palette = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777",
    "#65a30d", "#ea580c", "#4f46e5", "#0d9488", "#be123c"];

  function chartData() {
    const node = document.getElementById("chart-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function draw(data) {
    if (!data || typeof Chart === "undefined") return;
    document.querySelectorAll("canvas[data-series]").forEach(function (canvas) {
      const values = data[canvas.dataset.series] || [];
      const labels = data[canvas.dataset.labels || "days"] || [];
      const existing = Chart.getChart(canvas);
      if (existing) {
        existing.data.labels = labels;
        existing.data.datasets[0].data = values;
        existing.update();
        return;
      }
      const percent = canvas.dataset.percent === "1";
      const horizontal = canvas.dataset.horizontal === "1";
      const colour = horizontal ? palette : palette[0];
      new Chart(canvas, {
        type: canvas.dataset.kind || "line",
        data: {
          labels: labels,
          datasets: [{
            label: canvas.closest("figure").querySelector("figcaption")?.textContent || canvas.dataset.series,
            data: values,
            backgroundColor: colour,
            borderColor: horizontal ? palette : palette[0],
            pointRadius: 2,
            tension: 0.2,
          }],
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          indexAxis: horizontal ? "y" : "x",
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: percent ? { label: (c) => (100 * c.parsed.y).toFixed(1) + "%" } : {},
            },
          },
          scales: percent ? { y: { ticks: { callback: (v) => (100 * v).toFixed(0) + "%" } } } : {},
        },
      });
    });
  }

  async function refresh() {
    const response = await fetch(location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    document.querySelectorAll("[data-live][id]").forEach(function (node) {
      const replacement = fresh.getElementById(node.id);
      if (replacement) node.innerHTML = replacement.innerHTML;
    });
    body.dataset.version = fresh.body.dataset.version;
    draw(chartData());
  }

  async function poll() {
    try {
      const response = await fetch("/api/state", { credentials: "same-origin" });
      if (response.ok) {
        const state = await response.json();
        if (state.version !== body.dataset.version) {
          if (body.dataset.live === "swap") {
            await refresh();
          } else {
            const stale = document.getElementById("stale");
            if (stale) stale.hidden = false;
          }
        }
        document.getElementById("live")?.classList.remove("off");
      } else {
        document.getElementById("live")?.classList.add("off");
      }
    } catch (e) {
      document.getElementById("live")?.classList.add("off");
    }
    setTimeout(poll, Number(body.dataset.refreshMs) || 2000);
  }

  draw(chartData());
  setTimeout(poll, Number(body.dataset.refreshMs) || 2000);
})();

// The overview's chart: events received and applied per minute over the last 24 h, drawn with
// uPlot from the JSON the page carries in <script type="application/json" id="chart-data">
// ({"minutes": [unix seconds…], "received": […], "applied": […]}). Without JavaScript the page
// shows the same figures per hour as a table.
(function () {
  function draw() {
    var data = document.getElementById("chart-data");
    var target = document.getElementById("chart");
    if (!data || !target || typeof uPlot === "undefined") return;
    var series = JSON.parse(data.textContent);
    target.innerHTML = "";
    var width = Math.max(320, target.clientWidth - 20);
    new uPlot({
      width: width,
      height: 240,
      scales: { x: { time: true } },
      series: [
        {},
        { label: "received", stroke: "#3b5bdb", width: 1.5 },
        { label: "applied", stroke: "#2b8a3e", width: 1.5 },
      ],
      axes: [{}, { label: "events / minute" }],
    }, [series.minutes, series.received, series.applied], target);
    var fallback = document.getElementById("chart-table");
    if (fallback) fallback.hidden = true;
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
  document.addEventListener("htmx:afterSettle", draw);
})();

/* twin dashboard: load plotly.js's cartesian bundle (scatter, bar, heatmap: every trace the pages draw, a third of
   the full bundle's size and start-up time) at once, so that the browser evaluates it while the page's first
   requests are answered. Until it has run, window.Plotly is a promise-like placeholder: dcc.Graph takes
   window.Plotly when there is one and waits on it (Promise.resolve), and the bundle's last line replaces it with
   plotly itself. Should the bundle fail to load, the full bundle dcc.Graph would load is loaded instead. */
(function () {
  "use strict";
  var here = document.currentScript && document.currentScript.src;
  if (window.Plotly || !here) {
    return;
  }
  var load = function (src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.async = true;
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  };
  var ready = load(here.replace(/[^/]*$/, "plotly-cartesian.min.js")).catch(function () {
    return load(window._dashPlotlyJSURL);
  });
  window.Plotly = {
    then: function (resolve, reject) {
      return ready.then(resolve, reject);
    },
  };
})();

/* twin dashboard: plotly.js's cartesian bundle (scatter, bar, heatmap: every trace the pages draw; a third of the
   full bundle's size and start-up time) instead of the full one dcc.Graph would load.

   Its bytes are fetched at once; it is run (some 0.1-0.4 s of the browser's main thread on a first visit) once a
   page that draws graphs is in (its own callbacks are sent then), so that the browser runs it while the server
   works on them (the first requests, for the page and the run picker, are answered quickly), or when a graph asks
   for it, whichever comes first; a page without graphs never runs it. Until it has run, window.Plotly is a promise-like placeholder: dcc.Graph takes window.Plotly when there is
   one and waits on it (Promise.resolve); the bundle's last line replaces it with plotly itself. Should the bundle
   fail to load, the full bundle is loaded instead. */
(function () {
  "use strict";
  var here = document.currentScript && document.currentScript.src;
  if (window.Plotly || !here) {
    return;
  }
  var bundle = here.replace(/[^/]*$/, "plotly-cartesian.min.js");
  var hint = document.createElement("link");
  hint.rel = "preload";
  hint.as = "script";
  hint.href = bundle;
  document.head.appendChild(hint);

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
  var ready = null;
  var start = function () {
    if (!ready) {
      ready = load(bundle).catch(function () {
        return load(window._dashPlotlyJSURL);
      });
    }
    return ready;
  };
  window.Plotly = {
    then: function (resolve, reject) {
      return start().then(resolve, reject);
    },
  };

  // a page that draws graphs (``dashboards.layout.DRAWS_GRAPHS``) is in its container (``PAGE_CONTAINER``): its own
  // callbacks are sent
  var container = "page-container";
  var graphs = ".draws-graphs";
  var watch = new MutationObserver(function () {
    var page = document.getElementById(container);
    if (page && page.querySelector(graphs)) {
      watch.disconnect();
      start();
    }
  });
  watch.observe(document.documentElement, {childList: true, subtree: true});
})();

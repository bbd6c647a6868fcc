// Renders the API reference from the document this server embeds. A file of
// its own, not an inline script, so that the page's CSP needs no
// 'unsafe-inline' for scripts.
(function () {
  "use strict";
  Redoc.init("/api/v1/openapi.json", {
    hideDownloadButton: false,
    expandResponses: "200,201,202",
    jsonSampleExpandLevel: 3,
    disableSearch: false
  }, document.getElementById("redoc"));
})();

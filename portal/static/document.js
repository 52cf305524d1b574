// Document and receipt pages: a print button, and the scan state kept up to date while the virus
// check runs. Without this file the pages still work: the receipt prints from the browser's menu
// and the document page has a "Refresh this page" link.
(function () {
  "use strict";

  var printButton = document.getElementById("print-receipt");
  if (printButton) {
    printButton.hidden = false;
    printButton.addEventListener("click", function () {
      window.print();
    });
  }

  var details = document.getElementById("document-details");
  if (!details || details.getAttribute("data-state") !== "pending_scan" || !window.fetch) {
    return;
  }
  var reference = details.getAttribute("data-document");
  var tries = 0;

  // The receipt carries the state and, unlike the full metadata, is not recorded as a "metadata
  // viewed" audit event on every poll; the page is reloaded (and so audited) once, when it changes.
  function poll() {
    tries += 1;
    fetch("/api/v1/documents/" + encodeURIComponent(reference) + "/receipt", {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (receipt) {
        if (receipt && receipt.state && receipt.state !== "pending_scan") {
          window.location.reload();
        } else if (tries < 120) {
          window.setTimeout(poll, Math.min(1000 * tries, 10000));
        }
      })
      .catch(function () {
        if (tries < 120) {
          window.setTimeout(poll, 10000);
        }
      });
  }
  window.setTimeout(poll, 1000);
})();

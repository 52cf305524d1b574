// The upload page, enhanced: several files at once, dragged in or picked, each sent with the tus
// resumable-upload protocol (tus-js-client) so that a dropped connection resumes where it stopped,
// with a progress bar per file and its reference as soon as it is received.
// Without JavaScript (or without tus support) the plain form sends one file at a time.
(function () {
  "use strict";

  var form = document.getElementById("upload-form");
  if (!form || !window.tus || !window.tus.isSupported) {
    return;
  }
  var input = document.getElementById("file");
  var dropzone = document.getElementById("dropzone");
  var list = document.getElementById("upload-list");
  var section = document.getElementById("upload-progress");
  var announcer = document.getElementById("upload-announcer");
  var button = document.getElementById("upload-button");
  var review = form.getAttribute("data-review");
  var csrfToken = form.getAttribute("data-csrf-token");
  var queued = [];
  var counter = 0;
  var running = 0;
  var MAX_PARALLEL = 3;
  var waiting = [];

  input.multiple = true;
  document.getElementById("file-label").textContent = "Choose files";
  document.getElementById("file-hint").textContent =
    "Choose one or more files, or drag and drop them here. Then select Upload.";
  button.textContent = "Upload";

  function announce(text) {
    // Cleared first so that the same message twice is still read out.
    announcer.textContent = "";
    window.setTimeout(function () {
      announcer.textContent = text;
    }, 50);
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text; // never innerHTML: file names are untrusted
    }
    return node;
  }

  function addFiles(files) {
    for (var i = 0; i < files.length; i += 1) {
      queued.push(addRow(files[i]));
    }
    if (files.length) {
      section.hidden = false;
      announce(files.length === 1 ? "1 file added" : files.length + " files added");
    }
  }

  function addRow(file) {
    counter += 1;
    var id = "upload-" + counter;
    var row = element("li", "portal-upload");
    row.id = id;
    var name = element("p", "portal-upload__name", file.name);
    name.id = id + "-name";
    var progress = element("progress", "portal-upload__bar");
    progress.id = id + "-progress";
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-labelledby", id + "-name");
    progress.setAttribute("aria-describedby", id + "-status");
    progress.textContent = "0%";
    var status = element("p", "portal-upload__status", "Ready to upload");
    status.id = id + "-status";
    row.appendChild(name);
    row.appendChild(progress);
    row.appendChild(status);
    list.appendChild(row);
    return { file: file, row: row, progress: progress, status: status, lastSaid: 0 };
  }

  function setProgress(item, percent) {
    item.progress.value = percent;
    item.progress.textContent = percent + "%";
    item.status.textContent = "Uploading: " + percent + "%";
    // Announced politely at quarters only, not at every byte.
    if (percent >= item.lastSaid + 25 && percent < 100) {
      item.lastSaid = percent - (percent % 25);
      announce(item.file.name + ": " + item.lastSaid + "% uploaded");
    }
  }

  function errorMessage(error) {
    var response = error && error.originalResponse;
    if (response) {
      try {
        var body = JSON.parse(response.getBody());
        if (body && body.error && body.error.message) {
          return body.error.message;
        }
      } catch (ignored) {
        // not JSON: fall through to the general message
      }
    }
    return "The upload stopped and could not be resumed. Check your connection, then choose the file again.";
  }

  function finished(item, reference) {
    item.progress.value = 100;
    item.progress.textContent = "100%";
    item.status.textContent = "";
    item.status.appendChild(document.createTextNode("Received. Reference: "));
    item.status.appendChild(element("strong", "portal-reference portal-upload__reference", reference));
    item.status.appendChild(document.createTextNode(" "));
    var link = element("a", "ds_link", "Receipt");
    link.href = "/documents/" + encodeURIComponent(reference) + "/receipt";
    link.appendChild(element("span", "visually-hidden", " for " + item.file.name));
    item.status.appendChild(link);
    item.row.classList.add("portal-upload--done");
    announce(item.file.name + " received. Reference " + reference.split("").join(" "));
  }

  function failed(item, message) {
    item.status.textContent = message;
    item.status.classList.add("ds_question__error-message");
    announce(item.file.name + " was not uploaded. " + message);
  }

  function referenceFrom(upload, response) {
    var reference = response && response.getHeader("Upload-Document-Reference");
    if (reference) {
      return Promise.resolve(reference);
    }
    // Resumed after the last byte had already arrived: ask the server for the document.
    return fetch(upload.url, {
      credentials: "same-origin",
      headers: { Accept: "application/json", "Tus-Resumable": "1.0.0" }
    })
      .then(function (answer) {
        return answer.json();
      })
      .then(function (body) {
        return (body.document && body.document.reference) || body.reference;
      });
  }

  function start(item) {
    running += 1;
    var metadata = {
      filename: item.file.name,
      filetype: item.file.type || "application/octet-stream",
      review: review
    };
    var requestSelect = document.getElementById("request");
    var caseSelect = document.getElementById("case");
    if (requestSelect && requestSelect.value) {
      metadata.request = requestSelect.value;
    }
    if (caseSelect && caseSelect.value) {
      metadata["case"] = caseSelect.value;
    }
    item.status.textContent = "Starting";
    var upload = new window.tus.Upload(item.file, {
      endpoint: "/api/v1/uploads",
      metadata: metadata,
      headers: { "X-CSRF-Token": csrfToken },
      chunkSize: parseInt(form.getAttribute("data-chunk-bytes"), 10) || 16 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000],
      // Resuming after a dropped connection works within the page. Resuming after a reload would
      // keep the file's name in the browser's storage, and names are personal data (shared PCs).
      storeFingerprintForResuming: false,
      removeFingerprintOnSuccess: true,
      onProgress: function (sent, total) {
        setProgress(item, total ? Math.floor((sent / total) * 100) : 0);
      },
      onShouldRetry: function (error, attempt, options) {
        var status = error.originalResponse ? error.originalResponse.getStatus() : 0;
        if (status >= 400 && status < 500 && status !== 409 && status !== 423) {
          return false; // refused (type, size, rights): retrying will not help
        }
        item.status.textContent = "Connection lost: trying again";
        if (attempt === 0) {
          announce(item.file.name + ": connection lost, trying again");
        }
        return true;
      },
      onError: function (error) {
        failed(item, errorMessage(error));
        next();
      },
      onSuccess: function (payload) {
        referenceFrom(upload, payload && payload.lastResponse)
          .then(function (reference) {
            finished(item, reference);
          })
          .catch(function () {
            failed(item, "The file was received but its reference could not be read. Look for it on the review page.");
          })
          .then(next);
      }
    });
    upload.start();
  }

  function next() {
    running -= 1;
    if (waiting.length) {
      start(waiting.shift());
    } else if (running === 0) {
      button.disabled = false;
      announce("All uploads have finished.");
    }
  }

  input.addEventListener("change", function () {
    addFiles(input.files);
    input.value = "";
  });

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.add("ds_file-upload__dropzone", "ds_file-upload__dropzone--dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function () {
      dropzone.classList.remove("ds_file-upload__dropzone", "ds_file-upload__dropzone--dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files) {
      addFiles(event.dataTransfer.files);
    }
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!queued.length) {
      announce("Choose at least one file first.");
      input.focus();
      return;
    }
    button.disabled = true;
    var batch = queued;
    queued = [];
    announce(batch.length === 1 ? "Uploading 1 file" : "Uploading " + batch.length + " files");
    batch.forEach(function (item) {
      if (running < MAX_PARALLEL) {
        start(item);
      } else {
        item.status.textContent = "Waiting";
        waiting.push(item);
      }
    });
  });
})();

// Renders later pages from #report-data; `card()` and `sampleHtml()` mirror the card and sample
// macros of report_macros.html. On load and whenever an image settles it records what a reader sees
// into #report-check (image and card counts) and warns visibly if any thumbnail failed to decode.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var perPage = data.per_page;
  var galleryKeys = {};
  (data.gallery_keys || []).forEach(function (k) { galleryKeys[k] = true; });
  var ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"};
  function esc(v) { return (v === null || v === undefined ? "" : String(v)).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }
  function fmt(v, digits) {
    if (v === null || v === undefined) return "\u2013";
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    var s = v.toFixed(digits === undefined ? 4 : digits).replace(/0+$/, "").replace(/\.$/, "");
    return s === "" || s === "-0" ? "0" : s;
  }
  function thumb(id, path) {
    var uri = data.thumbs[id];
    if (!uri) return '<div class="noimg" title="no thumbnail (unreadable or over the size budget)">no preview</div>';
    return '<img src="' + uri + '" alt="' + esc(path) + '">';
  }
  function side(id, path, split, label) {
    return '<div class="side"><a class="thumb" href="#sample-' + esc(id) + '">' + thumb(id, path) + '</a>' +
      '<a class="path" href="#sample-' + esc(id) + '" title="' + esc(path) + '">' + esc(path) + '</a>' +
      '<div class="meta">' + esc(split) + ' \u00b7 label <b>' + esc(label === null ? "(none)" : label) + '</b></div></div>';
  }
  function card(it) {
    var sides = side(it.id, it.p, it.sp, it.l);
    if (it.id2) sides += side(it.id2, it.p2, it.sp2, it.l2);
    var facts = ['score <b>' + fmt(it.s) + '</b>'];
    if (it.d !== undefined && it.d !== null) facts.push('distance ' + fmt(it.d));
    if (it.e) facts.push(esc(it.e));
    if (it.g !== undefined && it.g !== null) {
      facts.push('suggested <b class="sugg">' + esc(it.g) + '</b>' + (it.c !== undefined && it.c !== null ? ' (' + fmt(it.c, 2) + ')' : ''));
    }
    return '<article class="card' + (it.id2 ? ' pair' : '') + (it.f ? ' flagged' : '') + '" data-id="' + esc(it.id) + '">' +
      '<div class="head"><span class="rank">#' + esc(it.r) + '</span>' + (it.f ? '<span class="flag">flagged</span>' : '') + '</div>' +
      '<div class="sides">' + sides + '</div><div class="facts">' + facts.join(' \u00b7 ') + '</div></article>';
  }
  function sampleHtml(id, s) {
    var rows = s[3].map(function (row) {
      var type = data.types[row[0]];
      var name = galleryKeys[type] ? '<a href="#gallery-' + esc(type) + '">' + esc(type) + '</a>' : esc(type);
      return '<tr class="' + (row[3] ? 'flagged' : '') + '"><td>' + name + '</td><td>' + fmt(row[1]) + '</td><td>' +
        fmt(row[2]) + '</td><td>' + (row[3] ? 'flagged' : '') + '</td></tr>';
    }).join('');
    return '<div class="sample" id="sample-' + esc(id) + '"><div class="shead"><code>' + esc(s[0]) + '</code> \u00b7 ' +
      esc(s[1]) + ' \u00b7 label <b>' + esc(s[2] === null ? "(none)" : s[2]) + '</b></div>' +
      '<table><thead><tr><th>issue type</th><th>score</th><th>rank</th><th></th></tr></thead><tbody>' + rows + '</tbody></table></div>';
  }
  function addSample(id) {
    if (!id || document.getElementById("sample-" + id) || !data.samples[id]) return;
    document.getElementById("samples-list").insertAdjacentHTML("beforeend", sampleHtml(id, data.samples[id]));
  }
  function nextPage(key) {
    var section = document.getElementById("gallery-" + key);
    var shown = parseInt(section.dataset.shown, 10);
    var total = parseInt(section.dataset.total, 10);
    var rest = data.galleries[key].rest;
    var page = rest.slice(shown - perPage, shown - perPage + perPage);
    section.querySelector(".cards").insertAdjacentHTML("beforeend", page.map(card).join(""));
    page.forEach(function (it) { addSample(it.id); addSample(it.id2); });
    shown += page.length;
    section.dataset.shown = String(shown);
    section.querySelector(".shown").textContent = "Showing 1\u2013" + shown.toLocaleString("en-US") + " of " + total.toLocaleString("en-US");
    if (shown >= total) { var b = section.querySelector("button.next"); if (b) b.remove(); }
    check();
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.next");
    if (button) nextPage(button.dataset.gallery);
  });
  function check() {
    var images = Array.prototype.slice.call(document.querySelectorAll("img"));
    var broken = images.filter(function (i) { return i.complete && i.naturalWidth === 0; });
    var cards = {};
    document.querySelectorAll("section.gallery").forEach(function (s) { cards[s.dataset.gallery] = s.querySelectorAll(".card").length; });
    document.getElementById("report-check").textContent = JSON.stringify({
      images: images.length,
      decoded: images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
      pending: images.filter(function (i) { return !i.complete; }).length,
      broken: broken.length,
      min_natural_width: images.reduce(function (m, i) { return Math.min(m, i.naturalWidth); }, images.length ? Infinity : 0),
      cards: cards,
      samples: document.querySelectorAll("#samples-list .sample").length
    });
    var warning = document.getElementById("broken-warning");
    warning.hidden = broken.length === 0;
    warning.textContent = broken.length ? broken.length + " thumbnail(s) failed to decode." : "";
  }
  window.addEventListener("load", check);
  document.addEventListener("load", function (e) { if (e.target.tagName === "IMG") check(); }, true);
  document.addEventListener("error", function (e) { if (e.target.tagName === "IMG") check(); }, true);
  check();
})();

// Layout probe for tests/test_browser.py, evaluated in a loaded report through the Chrome
// DevTools protocol (Runtime.evaluate, returnByValue). It measures the laid-out page and
// returns what it found; every finding names the <h2> section it sits in.
(function () {
  var vw = document.documentElement.clientWidth;
  function section(el) {
    // the text of the h2 heading the element sits under
    var h = null, all = document.querySelectorAll("h1, h2");
    for (var i = 0; i < all.length; i++) {
      if (all[i].compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) h = all[i];
    }
    return h ? h.textContent.trim() : "";
  }
  function scroller(el) {
    // nearest ancestor that scrolls horizontally
    for (var p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      var ox = getComputedStyle(p).overflowX;
      if (ox === "auto" || ox === "scroll" || ox === "hidden") return p;
    }
    return null;
  }
  function name(el) {
    return el.tagName.toLowerCase() + (el.className ? "." + String(el.className).split(" ")[0] : "")
      + ": " + (el.textContent || el.getAttribute("alt") || "").trim().slice(0, 60);
  }
  var out = {viewport: vw, page_width: document.documentElement.scrollWidth,
             wide: [], tall_rows: [], overlaps: [], undecoded: [], images: 0, small_figures: []};
  // 1. nothing wider than the page (content inside its own scroll box is clipped, not wide)
  document.querySelectorAll("body *").forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) return;
    var s = scroller(el);
    if (s) return;
    if (r.right > vw + 0.5 || r.left < -0.5)
      out.wide.push({section: section(el), element: name(el), left: r.left, right: r.right});
  });
  // 2. table rows at most 120 px tall
  document.querySelectorAll("tr").forEach(function (tr) {
    var h = tr.getBoundingClientRect().height;
    if (h > 120) out.tall_rows.push({section: section(tr), row: name(tr), height: h});
  });
  // 3. no two text boxes overlap (boxes clipped to their scroll box's visible part)
  var boxes = [];
  var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  var node, id = 0;
  while ((node = walker.nextNode())) {
    if (!node.textContent.trim()) continue;
    var parent = node.parentElement;
    if (!parent || parent.closest("script, style")) continue;
    var s = scroller(parent);
    var clip = s ? s.getBoundingClientRect() : null;
    var range = document.createRange();
    range.selectNodeContents(node);
    var rects = range.getClientRects();
    id += 1;
    for (var i = 0; i < rects.length; i++) {
      var r = rects[i];
      var b = {id: id, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
               text: node.textContent.trim().slice(0, 40), el: parent};
      if (clip) {
        b.left = Math.max(b.left, clip.left); b.right = Math.min(b.right, clip.right);
        b.top = Math.max(b.top, clip.top); b.bottom = Math.min(b.bottom, clip.bottom);
      }
      if (b.right - b.left > 0.5 && b.bottom - b.top > 0.5) boxes.push(b);
    }
  }
  boxes.sort(function (a, b) { return a.top - b.top; });
  for (var i = 0; i < boxes.length; i++) {
    for (var j = i + 1; j < boxes.length && boxes[j].top < boxes[i].bottom; j++) {
      var a = boxes[i], b = boxes[j];
      if (a.id === b.id) continue;
      var dx = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      var dy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (dx > 1 && dy > 1 && out.overlaps.length < 50)
        out.overlaps.push({section: section(a.el), a: a.text, b: b.text, dx: dx, dy: dy});
    }
  }
  // 4. every image decoded, and not shrunk to illegibility (at least half its pixel width)
  var imgs = Array.from(document.images);
  out.images = imgs.length;
  imgs.forEach(function (img) {
    if (!(img.complete && img.naturalWidth > 0))
      out.undecoded.push({section: section(img), alt: img.alt.slice(0, 60)});
    else if (img.getBoundingClientRect().width < 0.5 * img.naturalWidth)
      out.small_figures.push({section: section(img), alt: img.alt.slice(0, 60),
                              shown: img.getBoundingClientRect().width, natural: img.naturalWidth});
  });
  return out;
})();

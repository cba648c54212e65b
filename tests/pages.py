"""Pages as a reader sees them: opened in Debian's headless Chromium at a
laptop width, with every <details> opened, and measured as rendered.

``read_page`` returns what was measured; ``assert_readable`` holds the promises
every page remedysweep writes keeps (report.html, doctor.html, watch.html,
compare.html):

* no raw TeX or Markdown markup reaches the text a reader sees;
* no text, HTML or SVG, renders smaller than 9 px;
* no horizontal scroll at 1200 px;
* every SVG and image decodes, nothing is fetched besides the page itself, and
  no script error or dialog appears.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import need

WIDTH = 1200
SMALLEST_PX = 9.0
# raw TeX (matplotlib's mathtext markers, backslash commands, math delimiters)
# and Markdown (code spans, emphasis, link syntax) that should have been rendered
RAW_MARKUP = re.compile(r"\\mathdefault|\\[a-zA-Z]+\{|\$[^$\s][^$]*\$|\^\{|`|\*\*|__\w|\]\(http")

_MEASURE = """async () => {
    for (const d of document.querySelectorAll('details')) d.open = true;
    const decoded = [];
    for (const svg of document.querySelectorAll('svg')) {
        const xml = new XMLSerializer().serializeToString(svg);
        const img = new Image();
        img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(xml);
        try { await img.decode(); decoded.push(img.naturalWidth > 0 && img.naturalHeight > 0); }
        catch (e) { decoded.push(false); }
    }
    for (const img of document.images) decoded.push(img.complete && img.naturalWidth > 0);
    const texts = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const text = node.textContent.trim();
        const el = node.parentElement;
        if (!text || !el || ['SCRIPT', 'STYLE', 'TITLE'].includes(el.tagName)) continue;
        if (el.getClientRects().length === 0) continue;  // not rendered
        const style = getComputedStyle(el);
        if (style.visibility === 'hidden' || style.display === 'none') continue;
        let px = parseFloat(style.fontSize);
        if (el instanceof SVGElement && el.getScreenCTM) {
            const m = el.getScreenCTM();
            if (m) px *= Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
        }
        texts.push({text: text.slice(0, 80), px: Math.round(px * 10) / 10, svg: el instanceof SVGElement});
    }
    return {decoded, texts, scroll_width: document.documentElement.scrollWidth,
            visible_text: document.body.innerText};
}"""


def read_page(page_path: Path, screenshot: Path | None = None, width: int = WIDTH) -> dict:
    """Open the page and measure it; a screenshot of its first screen is kept
    where one is asked for."""
    chromium = need("chromium", "Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": width, "height": 800})
        errors, dialogs, requests = [], [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri(), wait_until="load")
        if screenshot is not None:
            page.screenshot(path=str(screenshot))  # the first screen, before <details> are opened
        facts = page.evaluate(_MEASURE)
        browser.close()
    facts.update(errors=errors, dialogs=dialogs, requests=requests, uri=page_path.as_uri(), width=width)
    return facts


def assert_readable(facts: dict) -> None:
    assert facts["decoded"] and all(facts["decoded"]), facts["decoded"]
    assert facts["errors"] == [] and facts["dialogs"] == [], (facts["errors"], facts["dialogs"])
    assert facts["requests"] == [facts["uri"]], "the page loaded something besides itself"
    assert facts["scroll_width"] <= facts["width"], f"the page scrolls sideways at {facts['width']} px ({facts['scroll_width']} px wide)"
    small = [t for t in facts["texts"] if t["px"] < SMALLEST_PX]
    assert not small, f"text under {SMALLEST_PX:g} px: {small[:8]}"
    raw = [t["text"] for t in facts["texts"] if RAW_MARKUP.search(t["text"])]
    assert not raw, f"raw TeX or Markdown reaches the reader: {raw[:8]}"
    assert any(t["svg"] for t in facts["texts"]), "no plot text was measured: the plots keep their text as text"

"""Vision Lab: an interactive dashboard for the computer-vision chapter of Dive into Deep Learning.

    python app.py [--host H] [--port P] [--share] [--device auto|cpu|cuda|mps]

``demo = build_demo()`` stays at module level: Hugging Face Spaces and ``gradio app.py``
import it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Must happen before gradio is imported: it reads the variable at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from panels import PANELS, admission, deployment, lazy  # noqa: E402
from panels.cache import make_image_writes_atomic, start_trimming  # noqa: E402
from panels.common import MAX_UPLOAD_BYTES  # noqa: E402
from panels.i18n import key_of, tr, translations  # noqa: E402
from vision_core.device import DEVICE_CHOICES, describe_device, set_device  # noqa: E402
from vision_core.fetch import fetch_at_startup  # noqa: E402

TITLE = "Vision Lab"
QUEUE_MAX_SIZE = 64  # waiting requests beyond this get Gradio's "queue is full" message
DEFAULT_CONCURRENCY = 4  # light, CPU-cheap events may run side by side
# VISION_LAB_EAGER_PAGE=1: every tab's pictures in the first response, uncompressed, as the page
# sent them before issue 17, for benchmarks.first_load to measure beside today's.
EAGER_PAGE = os.environ.get("VISION_LAB_EAGER_PAGE") == "1"
# System fonts only: the page must load nothing from outside the server.
THEME = gr.themes.Default(
    primary_hue="indigo",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)
CSS = """
#vl-header h1 { margin-bottom: 0; }
/* The subtitle and the limits line: quieter than the text, still >= 4.5:1 (WCAG AA) on the page's
   background in both themes (the theme's "subdued" grey was 1.9:1 on white). */
#vl-header p { margin-top: 0.2em; color: var(--neutral-600); }
#vl-limits p { margin: 0; font-size: 0.9em; color: var(--neutral-600); }
.dark #vl-header p, .dark #vl-limits p { color: var(--neutral-300); }
#vl-page-script { display: none; }

/* A Stop button while nothing runs (interactive=False): grey and flat, so it does not invite a click. */
button.stop:disabled, button.stop[disabled] {
  background: var(--button-secondary-background-fill); color: var(--body-text-color-subdued);
  border-color: var(--border-color-primary); box-shadow: none; opacity: 0.6; cursor: not-allowed;
}
/* The one "Try this" line of a view, and its formula: set apart a little from the explanation. */
.vl-try { border-left: 3px solid var(--color-accent); padding-left: var(--size-3) !important; }
.vl-formula .katex-display { overflow-x: auto; overflow-y: hidden; padding: 2px 0; }
.vl-formula .katex-display.vl-more-right { mask-image: linear-gradient(to right, #000 calc(100% - 3em), transparent); }

/* A table wider than its frame scrolls inside it; a fade at the right edge says there is more
   (the page's script marks such tables with .vl-more-right). */
.table-wrap.vl-more-right::after {
  content: ""; position: absolute; top: 0; right: 0; bottom: 0; width: var(--size-8); pointer-events: none;
  z-index: 8; background: linear-gradient(to right, transparent, var(--block-background-fill));
}

/* Phones: tables set compactly so most fit; plotly's toolbar, which a tap leaves over the labels
   and legends, is hidden (a double tap still resets the view). */
@media (max-width: 640px) {
  .table-wrap { --input-text-size: var(--text-xs); }
  .table-wrap .sizing-body td, .table-wrap .cell-wrap { padding: var(--size-1); }
  .js-plotly-plot .modebar-container { display: none !important; }
  .vl-formula .katex-display { font-size: 0.9em; }
}
"""
CSS += "".join(getattr(panel, "CSS", "") for panel in PANELS)  # a panel's own rules (e.g. its phone layout)

# The page's own script, run once when the page has loaded (gr.HTML's js_on_load; ``element`` is
# that HTML block, hidden, whose text is LANGUAGE_PROBE in the page's current language).
# 1. Tab titles follow a language switch made in Settings. Gradio 6.31 translates a tab's title
#    when the tab is first shown and keeps that text for tabs not opened yet, so after a switch
#    they stayed in the old language: each tab button still showing a title in another language
#    is given the current language's (read from the page's own translations).
# 2. A table or a formula wider than its frame gets .vl-more-right while its right part is scrolled
#    out of view (the CSS fades that edge).
PAGE_JS = """
const config = window.gradio_config || {};
const translations = config.i18n_translations || {};
const keyOf = (text) => (/"key":\\s*"([^"]+)"/.exec(text || "") || [])[1];
const probeKey = "__PROBE_KEY__";
const titleKeys = new Map();  // a tab title, in any language of the page -> its key
for (const c of config.components || []) {
  const key = c.type === "tabitem" && keyOf(c.props.label);
  if (key) for (const lang in translations) if (translations[lang][key]) titleKeys.set(translations[lang][key], key);
}
const language = () => {
  const shown = element.textContent.trim();
  return Object.keys(translations).find((lang) => translations[lang][probeKey] === shown) || "en";
};
const retitle = () => {
  const table = translations[language()] || {};
  for (const button of document.querySelectorAll(".tab-container button, .overflow-dropdown button")) {
    for (const node of button.childNodes) {
      const text = node.nodeType === Node.TEXT_NODE ? node.nodeValue.trim() : "";
      const wanted = text && table[titleKeys.get(text)];
      // The text node itself changes: Svelte keeps writing into it when the tab is opened.
      if (wanted && wanted !== text) node.nodeValue = node.nodeValue.replace(text, wanted);
    }
  }
};
const WIDE = ".virtual-table-viewport, .vl-formula .katex-display";
const markWide = (view) => {  // a table's scroller marks its frame; a formula marks itself
  const more = view.scrollWidth - view.clientWidth - view.scrollLeft > 1;
  const marked = view.closest(".table-wrap") || view;
  if (marked.classList.contains("vl-more-right") !== more) marked.classList.toggle("vl-more-right", more);
};
// Titles are checked on the next frame (no layout read); widths at most every 300 ms, since
// reading a width forces a layout, which while the page builds itself would be one extra layout
// per frame.
let pending = false;
let widths = 0;
const update = () => {
  if (!pending) {
    pending = true;
    requestAnimationFrame(() => { pending = false; retitle(); });
  }
  if (!widths) widths = setTimeout(() => { widths = 0; document.querySelectorAll(WIDE).forEach(markWide); }, 300);
};
const inPlot = (record) => {  // plotly redraws its own DOM on every hover: nothing there for us
  const node = record.target.nodeType === Node.ELEMENT_NODE ? record.target : record.target.parentElement;
  return Boolean(node && node.closest(".js-plotly-plot"));
};
new MutationObserver((records) => { if (!records.every(inPlot)) update(); })
  .observe(document.body, {subtree: true, childList: true, characterData: true});
document.addEventListener("scroll", (event) => { if (event.target.matches?.(WIDE)) markWide(event.target); },
                          {capture: true, passive: true});
window.addEventListener("resize", update);
update();
"""
LANGUAGE_PROBE = ("English", "简体中文")  # the text PAGE_JS reads to know the page's language


def _header() -> str:
    return (
        f"# {TITLE}\n"
        # One marker per string: the page translates only the first one it finds.
        + tr("See the classic computer-vision chapter of *Dive into Deep Learning* at work. Running on",
             "看《动手学深度学习》计算机视觉一章的经典方法如何运作。运行于")
        + f" **{describe_device()}**."
    )


def _limits_note() -> str:
    """The public server's limits, one line under the header (shown only on a shared server: the
    numbers are panels.deployment's and panels.admission's, README's "Public server" lists them)."""
    limit = deployment.job_limit_s(shared_server=True)
    heavy = admission.MAX_HEAVY_PER_VISITOR
    if limit is None:
        return tr(f"Public server: at most {heavy} trainings or style transfers per visitor at a time.",
                  f"公共服务器：每位访客同时最多 {heavy} 个训练或风格迁移任务。")
    minutes = f"{limit / 60:g}"
    return tr(f"Public server: a training or style transfer stops after {minutes} min, and each visitor may have "
              f"{heavy} at a time. For longer jobs run Vision Lab on your own computer (`python app.py`).",
              f"公共服务器：训练或风格迁移任务运行 {minutes} 分钟后停止，每位访客同时最多 {heavy} 个。"
              "更长的任务请在自己的电脑上运行 Vision Lab（`python app.py`）。")


def _page_top() -> tuple[str, gr.Markdown]:
    """The header, and the limits line shown only when the server is shared (read on each page
    load: ``--share`` is parsed after this module has built the demo)."""
    return _header(), gr.Markdown(visible=deployment.shared())


def build_demo() -> gr.Blocks:
    """The whole dashboard: a header and one tab per panel, with the queue configured and its
    door (panels/admission.py) installed."""
    with gr.Blocks(title=TITLE) as demo:
        if not EAGER_PAGE:
            lazy.install_light_config(demo)  # the API schemas once per component, not three times
            lazy.install_compression(demo)  # the page and its config gzipped (Gradio sends them as they are)
        header = gr.Markdown(_header(), elem_id="vl-header")
        limits = gr.Markdown(_limits_note(), elem_id="vl-limits", visible=deployment.shared())
        gr.HTML(tr(*LANGUAGE_PROBE), elem_id="vl-page-script",
                js_on_load=PAGE_JS.replace("__PROBE_KEY__", key_of(LANGUAGE_PROBE[0])))
        with gr.Tabs(overflow_behavior="wrap"):  # every tab in sight on a phone, none behind "⋯"
            for panel in PANELS:
                with gr.Tab(tr(panel.TITLE, panel.TITLE_ZH), id=panel.TAB_ID):
                    panel.build()
        # Re-read on each page load: `--device` and `--share` are parsed after this module has built the demo.
        demo.load(_page_top, None, [header, limits], api_visibility="private")
        for tabs in (b for b in demo.blocks.values() if isinstance(b, gr.Tabs)):
            tabs.overflow_behavior = "wrap"  # the panels' sections too: on a phone they wrap onto a second row
        if not EAGER_PAGE:  # each tab's pictures arrive when it is first opened: the page's config stays small
            lazy.defer_pictures(demo)
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=DEFAULT_CONCURRENCY)
    # Per-visitor limits, room for light calls, unread jobs dropped, sessions bound to their address.
    admission.install(demo)
    start_trimming()  # Gradio's file cache stays under a size and an age; the examples stay
    make_image_writes_atomic()  # two visitors getting the same picture must not see it half-written
    _start_fetching()
    return demo


def _start_fetching() -> None:
    """``VISION_LAB_FETCH`` (README, Spaces): fetch the book's files in the background while the page serves."""
    try:
        fetch_at_startup()
    except ValueError as err:  # a typo in a Space variable must not keep the page from starting
        print(f"VISION_LAB_FETCH ignored: {err}", file=sys.stderr, flush=True)


demo = build_demo()
I18N = translations()  # every English / Chinese pair the panels recorded while being built


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Vision Lab dashboard")
    parser.add_argument(
        "--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 for your network)",
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port to listen on (default: $GRADIO_SERVER_PORT or 7860)",
    )
    parser.add_argument("--share", action="store_true", help="also open a temporary public link (needs internet)")
    parser.add_argument(
        "--device", default="auto", choices=DEVICE_CHOICES,
        help="where tensors run: auto picks cuda > mps > cpu (default: auto)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    try:
        set_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    deployment.configure(share=args.share)
    print(f"Vision Lab on {describe_device()}", flush=True)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        theme=THEME,
        css=CSS,
        i18n=I18N,
        max_file_size=MAX_UPLOAD_BYTES,
        footer_links=["api", "settings"],
    )


if __name__ == "__main__":
    main(sys.argv[1:])

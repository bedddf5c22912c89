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

from panels import PANELS, admission, deployment  # noqa: E402
from panels.cache import make_image_writes_atomic, start_trimming  # noqa: E402
from panels.common import MAX_UPLOAD_BYTES  # noqa: E402
from panels.i18n import tr, translations  # noqa: E402
from vision_core.device import DEVICE_CHOICES, describe_device, set_device  # noqa: E402

TITLE = "Vision Lab"
QUEUE_MAX_SIZE = 64  # waiting requests beyond this get Gradio's "queue is full" message
DEFAULT_CONCURRENCY = 4  # light, CPU-cheap events may run side by side
# System fonts only: the page must load nothing from outside the server.
THEME = gr.themes.Default(
    primary_hue="indigo",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)
CSS = """
#vl-header h1 { margin-bottom: 0; }
#vl-header p { margin-top: 0.2em; color: var(--body-text-color-subdued); }
#vl-limits p { margin: 0; font-size: 0.9em; color: var(--body-text-color-subdued); }
"""


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
        header = gr.Markdown(_header(), elem_id="vl-header")
        limits = gr.Markdown(_limits_note(), elem_id="vl-limits", visible=deployment.shared())
        with gr.Tabs():
            for panel in PANELS:
                with gr.Tab(tr(panel.TITLE, panel.TITLE_ZH), id=panel.TAB_ID):
                    panel.build()
        # Re-read on each page load: `--device` and `--share` are parsed after this module has built the demo.
        demo.load(_page_top, None, [header, limits], api_visibility="private")
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=DEFAULT_CONCURRENCY)
    # Per-visitor limits, room for light calls, unread jobs dropped, sessions bound to their address.
    admission.install(demo)
    start_trimming()  # Gradio's file cache stays under a size and an age; the examples stay
    make_image_writes_atomic()  # two visitors getting the same picture must not see it half-written
    return demo


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

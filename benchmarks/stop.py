"""Stop latency: seconds from a Stop call until the job's last frame, through the app's API.

    python -m benchmarks.stop [--repeat 5] [--jobs style,ssd,fcn]

Launches the dashboard in this process (as ``benchmarks.load`` does). Each run starts a job
from a gradio_client session of its own, waits until its first step or batch has run, sends
Stop and times until the final frame arrives: a style transfer (the offline preset's size, 192 px
high), SSD training (the book's batch of 32) and FCN training (64 x 96 crops, batch 4). Stop
takes effect before the next step or batch, so the time is about one step or batch plus the
reply; the tests check that guarantee in steps (``tests/conftest.py: counting_steps``), this
script measures its seconds on the machine at hand and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from benchmarks.common import fmt_time, machine_line, print_table  # noqa: E402

HANG_GUARD = 600  # seconds: a job that has not started or stopped by then is reported, not waited for


def _jobs(photo: str) -> dict[str, tuple[str, list, str, object, str, object]]:
    """name -> (API name, arguments, Stop's API name, owner of the step function, its name, the panel's
    StopFlags)."""
    from gradio_client import handle_file

    import panels.segmentation.models as seg_models
    import panels.ssd as ssd_panel
    import panels.style as style_panel
    from vision_core import fcn, ssd
    from vision_core import style as vstyle

    image = handle_file(photo)
    return {
        "style": ("/style_transfer", [image, image, "efficientnet_lite0", 1.0, 4.0, 1.0, 0.1, 2000, 192, True,
                                      1, 1, 1, 1, 1], "/style_stop", vstyle._Run, "step", style_panel._stops),
        "ssd": ("/ssd_train", [5, 32, 0.2, 1000, "sgd"], "/ssd_stop", ssd._SSDEpochs, "train_batch",
                ssd_panel.sessions.stops),
        "fcn": ("/fcn_train", [50, 4, 0.001, 100, "sgd", "64x96"], "/fcn_stop", fcn._FCNEpochs, "train_batch",
                seg_models.sessions.stops),
    }


def _one_stop(url: str, api: str, args: list, stop_api: str, owner, step_name: str, stops) -> tuple[float, int]:
    """(seconds from the Stop call to the last frame, steps begun after Stop) of one run."""
    from gradio_client import Client

    from tests.conftest import counting_steps

    client = Client(url, verbose=False)
    with counting_steps(owner, step_name, stops) as steps:
        job = client.submit(*args, api_name=api)
        if not steps.first_done.wait(HANG_GUARD):
            raise RuntimeError(f"{api} did not start within {HANG_GUARD} s")
        start = time.perf_counter()
        client.predict(api_name=stop_api)
        job.result(timeout=HANG_GUARD)
        return time.perf_counter() - start, steps.after_stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="stops per job (default: 5)")
    parser.add_argument("--jobs", default="style,ssd,fcn", help="which jobs, comma-separated (default: all three)")
    args = parser.parse_args()
    print(machine_line())  # absolute times mean little without the machine they came from

    from PIL import Image

    import app
    from tests.conftest import free_port
    from vision_core.examples import load_content_photo

    app.demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                    i18n=app.I18N, max_file_size=app.MAX_UPLOAD_BYTES)
    photo = os.path.join(tempfile.mkdtemp(), "chelsea.png")
    Image.fromarray(load_content_photo("chelsea")).save(photo)
    jobs = _jobs(photo)
    rows: list[list[str]] = []
    try:
        for name in [n.strip() for n in args.jobs.split(",") if n.strip()]:
            api, job_args, stop_api, owner, step_name, stops = jobs[name]
            seconds, after = [], []
            for _ in range(args.repeat):
                s, a = _one_stop(app.demo.local_url, api, job_args, stop_api, owner, step_name, stops)
                seconds.append(s)
                after.append(a)
            rows.append([f"{api} (then {stop_api})", str(args.repeat), fmt_time(statistics.median(seconds)),
                         fmt_time(max(seconds)), str(max(after))])
    finally:
        app.demo.close()
    print_table(rows, ["job", "stops", "Stop to last frame, median", "max", "steps begun after Stop, max"])


if __name__ == "__main__":
    main()

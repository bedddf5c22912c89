"""Load: many visitors on the interactive endpoints at once, and heavy jobs queued behind one another.

    python -m benchmarks.load [--users 20] [--seconds 60] [--heavy 4]

Launches the dashboard in this process, then ``--users`` gradio_client sessions call the light
endpoints (boxes, anchors, an NMS step, a detection, a transposed convolution) in a loop for
``--seconds``, counting errors and timing each call; prints p50 / p95 / max per endpoint. Then
``--heavy`` sessions each start a short style transfer at the same moment: they share one
concurrency slot, so they run one after another; each must finish (none lost) or be told the
queue is full.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections import defaultdict

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from benchmarks.common import machine_line, print_table  # noqa: E402

TABLE = {"headers": ["label", "x1", "y1", "x2", "y2"], "data": [["astronaut", 20, 14, 366, 512]]}
X = {"headers": ["col 0", "col 1"], "data": [[0, 1], [2, 3]]}


def _light_calls(client, photo, banana):
    from gradio_client import handle_file

    image, bananas = handle_file(photo), handle_file(banana)
    return [
        ("/boxes", lambda: client.predict(image, TABLE, "xyxy", "pixels", api_name="/boxes")),
        ("/anchor_boxes", lambda: client.predict(image, 4, 4, "0.75, 0.5, 0.25", "1, 2, 0.5", 1, 1, False,
                                                 api_name="/anchor_boxes")),
        ("/trans_conv", lambda: client.predict(X, X, 1, 0, api_name="/trans_conv")),
        ("/ssd_detect", lambda: client.predict(bananas, 0.9, api_name="/ssd_detect")),
        ("/boxes_example", lambda: client.predict("chelsea", "xyxy", "pixels", api_name="/boxes_example")),
    ]


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--heavy", type=int, default=4)
    args = parser.parse_args()
    print(machine_line())  # absolute times mean little without the machine they came from

    import tempfile

    from gradio_client import Client, handle_file
    from PIL import Image

    import app
    from tests.conftest import free_port
    from vision_core.data.bananas import generate_bananas, read_bananas
    from vision_core.examples import load_example

    app.demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                    i18n=app.I18N, max_file_size=app.MAX_UPLOAD_BYTES)
    url = app.demo.local_url
    folder = tempfile.mkdtemp()
    photo, banana = os.path.join(folder, "photo.png"), os.path.join(folder, "banana.png")
    Image.fromarray(load_example("astronaut")).save(photo)
    generate_bananas(folder, num_train=1, num_val=1)
    Image.fromarray(read_bananas(folder, "val")[0][0].permute(1, 2, 0).numpy()).save(banana)

    times: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.time() + args.seconds

    def user(k: int) -> None:
        client = Client(url, verbose=False)
        calls = _light_calls(client, photo, banana)
        i = k
        while time.time() < stop_at:
            name, call = calls[i % len(calls)]
            i += 1
            start = time.perf_counter()
            try:
                call()
            except Exception as err:  # a load test counts every failure, whatever its kind
                with lock:
                    errors.append(f"{name}: {type(err).__name__}: {str(err)[:120]}")
                continue
            with lock:
                times[name].append(time.perf_counter() - start)

    threads = [threading.Thread(target=user, args=(k,)) for k in range(args.users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = []
    for name, values in sorted(times.items()):
        rows.append([name, str(len(values)), f"{statistics.median(values) * 1e3:.0f} ms",
                     f"{_percentile(values, 0.95) * 1e3:.0f} ms", f"{max(values) * 1e3:.0f} ms"])
    every = [v for values in times.values() for v in values]
    rows.append(["all", str(len(every)), f"{statistics.median(every) * 1e3:.0f} ms",
                 f"{_percentile(every, 0.95) * 1e3:.0f} ms", f"{max(every) * 1e3:.0f} ms"])
    print(f"{args.users} users for {args.seconds:.0f} s on the light endpoints: {len(every)} calls, "
          f"{len(errors)} errors")
    print_table(rows, ["endpoint", "calls", "p50", "p95", "max"])
    for line in errors[:10]:
        print("error:", line)

    # Heavy jobs at once: one concurrency slot, so they queue; none may be lost.
    content = handle_file(photo)
    outcomes: list[str] = [""] * args.heavy

    def heavy(k: int) -> None:
        client = Client(url, verbose=False)
        start = time.perf_counter()
        try:
            frames = list(client.submit(content, content, "efficientnet_lite0", 1.0, 4.0, 1.0, 0.1, 60, 96, True,
                                        1, 1, 1, 1, 1, api_name="/style_transfer"))
            status = str(frames[-1][2])
            outcomes[k] = f"{status.split('·')[0].strip()} after {time.perf_counter() - start:.1f} s"
        except Exception as err:  # "queue is full" is an acceptable answer; anything else is a loss
            outcomes[k] = f"{type(err).__name__}: {str(err)[:100]}"

    threads = [threading.Thread(target=heavy, args=(k,)) for k in range(args.heavy)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, outcome in enumerate(outcomes):
        print(f"heavy job {k + 1}: {outcome}")
    app.demo.close()


if __name__ == "__main__":
    main()

"""Server time of each panel interaction on the default image (what a click costs), on CPU.

    python -m benchmarks.panels

Calls each panel's render function directly with the inputs the page opens with, median
of 7 after 2 warm-ups (the Regions proposals are cached after the first search, as in the app).
"""

from __future__ import annotations

import torch

from benchmarks.common import fmt_time, machine_line, print_table, timeit
from panels import anchors as A
from panels import boxes as B
from panels import regions as R
from vision_core.examples import load_example


def main() -> None:
    print(machine_line())  # absolute times mean little without the machine they came from
    cpu = torch.device("cpu")
    astronaut, chelsea = load_example("astronaut"), load_example("chelsea")
    table = B.example_table("astronaut", "xyxy", "pixels")
    cases = [
        ("Boxes: draw and convert", lambda: B.render_boxes(astronaut, table, "xyxy", "pixels")),
        ("Boxes: switch format", lambda: B.switch_format(table, astronaut, "xyxy", "cxcywh", "pixels", "normalised")),
        ("Anchors: anchors at a cell", lambda: A.render_anchor_boxes(astronaut, 4, 4, "0.75, 0.5, 0.25", "1, 2, 0.5", 1, 1, False)),
        ("Anchors: with TinySSD's scales", lambda: A.render_anchor_boxes(astronaut, 4, 4, "0.75, 0.5, 0.25", "1, 2, 0.5", 1, 1, True)),
        ("Anchors: labelling, one step", lambda: A.render_labelling(astronaut, A.LABEL_GT, A.LABEL_ANCHORS, 0.5, 2)),
        ("Anchors: NMS, one step", lambda: A.render_nms(astronaut, A.NMS_PRED, 0.5, 1)),
        ("Regions: pool a proposal (search cached)", lambda: R.render_regions(chelsea, "fast", 30, 3, 16, 2, 2)),
    ]
    rows = [[name, "cpu", fmt_time(timeit(fn, cpu))] for name, fn in cases]
    rgb = load_example("coffee")
    R._proposal_cache.clear()
    rows.append(["Regions: first search of a new photo (coffee, fast)", "cpu",
                 fmt_time(timeit(lambda: (R._proposal_cache.clear(), R.proposals_for(rgb, "fast")), cpu, repeat=3, warmup=0))])
    print_table(rows, ["interaction", "device", "server time"])


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()

"""benchmarks.gpu: the one GPU command runs its whole path small on the CPU, so it cannot rot."""

import json
import math
import subprocess
import sys

import pytest
import torch

from benchmarks import gpu
from tests.conftest import HANG_GUARD_S, ROOT

CHECKS = [
    "anchors on the device",
    "nms and detection on the device",
    "RoI pooling on the device",
    "TinySSD: train, predict, evaluate, memory",
    "FCN: train, predict, memory",
    "style: CUDA graph = eager",
    "out of memory: released, next run works",
    "Stop: next step, memory given back",
    "DDP on NCCL",
]

# What a GPU machine lacks (gradio, plotly) or may lack (d2l's plotting imports): the script
# must run without them, d2l's stand-ins included.
BLOCKED = ("gradio", "plotly", "IPython", "matplotlib_inline")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu")
    code = ("import runpy, sys\n"
            f"for name in {BLOCKED!r}:\n"
            "    sys.modules[name] = None\n"
            f"sys.argv = ['benchmarks.gpu', '--device', 'cpu', '--quick', '--out', {str(out)!r}]\n"
            "runpy.run_module('benchmarks.gpu', run_name='__main__')\n")
    # The timeout only guards against a hang; how long the run takes is not checked.
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    return done, out


def test_quick_cpu_run_passes_every_check_and_fills_every_row(quick_run):
    done, out = quick_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu.json").read_text())
    assert report["ok"] and report["quick"] and report["device"].startswith("cpu") and not report["errors"]
    assert "cores" in report["machine"]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert list(statuses) == CHECKS
    # On the CPU only NCCL cannot run; everything else ran and passed.
    assert {name for name, status in statuses.items() if status != "pass"} == {"DDP on NCCL"}
    assert statuses["DDP on NCCL"] == "skip"
    rows = report["benchmarks"]
    workloads = " / ".join(r["workload"] for r in rows)
    for part in ("multibox_target", "multibox_detection", "nms", "TinySSD, one epoch", "the book's SGD",
                 "AdamW", "FCN, one epoch", "style transfer"):
        assert part in workloads, part
    # Every row was measured (a number, not None); how long anything took is not checked here.
    assert all(isinstance(r["ours_s"], float) and math.isfinite(r["ours_s"]) for r in rows)
    # Each baseline ran beside ours (d2l is installed with the test dependencies).
    with_baseline = [r for r in rows if "SGD" not in r["workload"] and "AdamW" not in r["workload"]]
    assert all(isinstance(r["baseline_s"], float) and r["ratio"] == pytest.approx(r["baseline_s"] / r["ours_s"])
               for r in with_baseline), with_baseline
    long_runs = [r for r in rows if "epochs of" in r["workload"]]
    assert len(long_runs) == 2 and all({"class_err", "bbox_mae"} <= set(r["metrics"]) for r in long_runs)
    # Bars are judged on CUDA at the sizes only, never on a quick CPU run.
    assert all(r["met"] is None for r in rows)
    table = (out / "gpu.md").read_text()
    assert "| workload | device | ours | baseline | ratio | bar | met |" in table
    assert table.count("\n| ") >= len(CHECKS) + len(rows)


def test_the_table_names_the_machine_it_ran_on(quick_run):
    # The title names the machine it ran on; every time in the table comes from this run's JSON.
    done, out = quick_run
    report = json.loads((out / "gpu.json").read_text())
    assert report["machine"] in (out / "gpu.md").read_text().splitlines()[0]


def test_a_failing_check_fails_the_run_and_a_skip_does_not():
    report = gpu.Report(torch.device("cpu"), gpu.QUICK, quick=True)
    report.check("skipped", lambda: (_ for _ in ()).throw(gpu.Skip("needs two GPUs")))
    assert report.ok and report.checks[-1]["status"] == "skip"

    def broken():
        raise AssertionError("on the device: 3 boxes, on the CPU: 4")

    report.check("broken", broken)
    report.check("after it", lambda: "still runs")
    assert not report.ok
    assert [c["status"] for c in report.checks] == ["skip", "fail", "pass"]
    assert report.checks[1]["detail"] == "AssertionError: on the device: 3 boxes, on the CPU: 4"


def test_a_broken_benchmark_is_reported_and_the_next_one_runs():
    report = gpu.Report(torch.device("cpu"), gpu.QUICK, quick=True)

    def rows():
        yield gpu.Row("first", 0.5, "book", 1.0)
        raise RuntimeError("CUDA error: an illegal memory access")

    report.bench("multibox", rows)
    report.bench("next", lambda: iter([gpu.Row("second", 0.25)]))
    assert not report.ok and report.errors == ["multibox: RuntimeError: CUDA error: an illegal memory access"]
    assert [r.workload for r in report.rows] == ["first", "multibox: broke", "second"]
    assert report.rows[0].ratio == 2.0


def test_bars_are_judged_on_cuda_at_full_size_only():
    row = gpu.Row("multibox_detection", 0.001, "d2l", 0.1)
    judged = gpu.Report(torch.device("cuda"), gpu.FULL, quick=False).judge(row, "multibox_detection")
    assert judged.bar == "≥ 200x" and judged.met is False  # 100x
    fast = gpu.Report(torch.device("cuda"), gpu.FULL, quick=False).judge(gpu.Row("style", 0.8), "style_500")
    assert fast.bar == "≤ 1 s" and fast.met is True
    quick = gpu.Report(torch.device("cpu"), gpu.QUICK, quick=True).judge(gpu.Row("style", 0.8), "style_500")
    assert quick.met is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_asked_for_without_a_gpu_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--device", "cuda"])
    assert exit_info.value.code == 2
    assert "PyTorch sees no CUDA GPU here" in capsys.readouterr().err

"""Times the project shows: measured in the run (the pace and time left of a streamed job), never
promised ahead of it in the page; benchmark output names the machine its numbers came from."""

import re

import pytest

from benchmarks.common import cpu_description, machine_line
from panels.streaming import Pace, pace_text


@pytest.mark.parametrize("done, total, elapsed, unit, since, text", [
    (40, 300, 6.44, "step", 0, "161 ms/step · about 42 s left"),
    (41, 300, 6.44, "step", 1, "161 ms/step · about 42 s left"),  # timed from step 1: 40 steps
    (3, 160, 6.9, "batch", 0, "2.3 s/batch · about 6 min left"),  # 157 x 2.3 s = 361 s
    (10, 2000, 25.0, "step", 0, "2.5 s/step · about 83 min left"),  # 1990 x 2.5 s = 4975 s
    (10, 5000, 25.0, "step", 0, "2.5 s/step · about 3 h 28 min left"),  # 4990 x 2.5 s = 208 min
    (5, 100, 0.05, "step", 0, "10 ms/step · about 950 ms left"),
    (300, 300, 48.3, "step", 0, "161 ms/step"),  # at the end: only the pace
])
def test_pace_text_gives_the_measured_pace_and_the_time_left(done, total, elapsed, unit, since, text):
    assert pace_text(done, total, elapsed, unit, since) == text


@pytest.mark.parametrize("done, elapsed, since", [(0, 1.0, 0), (5, 1.0, 5), (5, 0.0, 0), (5, float("nan"), 0)])
def test_pace_text_is_empty_before_a_step_is_timed(done, elapsed, since):
    assert pace_text(done, 300, elapsed, since=since) == ""


def test_pace_times_from_the_first_record_and_drops_the_time_left_at_the_end():
    now = [100.0]
    pace = Pace("batch", clock=lambda: now[0])
    assert pace(2, 10) == ""  # the first record: loading and warm-up are not timed
    now[0] += 1.5
    assert pace(5, 10) == "500 ms/batch · about 2.5 s left"
    now[0] += 0.5
    assert pace(6, 10, done=True) == "500 ms/batch"  # stopped at 6 of 10: nothing is left to run


def test_no_page_text_promises_an_absolute_time():
    # A machine's speed is not known before it works: the page may say what is slow relative to
    # what, and the running job shows its measured pace, but no text names seconds or minutes.
    import app  # noqa: F401  (builds every panel, recording each text pair)
    from panels.i18n import pairs

    english = re.compile(r"\b\d+(\.\d+)? ?(ms|s|sec|seconds?|min|minutes?|h|hours?)\b|several minutes|"
                         r"under a second|seconds an epoch")
    chinese = re.compile(r"\d+ ?(毫秒|秒|分钟|小时)|几分钟|几秒|一秒")
    # A public server's limit on one job's length is a rule the server enforces, not a promise of
    # speed: its note (app.py) and the stopped job's status (panels.streaming.limit_text) may name it.
    rules = ("Public server:", "Stopped at this server's limit")
    promises = [en for en, zh in pairs().values()
                if (english.search(en) or chinese.search(zh)) and not en.startswith(rules)]
    assert not promises, promises


def test_cpu_description_names_the_model_the_cores_and_the_vector_extensions():
    epyc = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
    xeon = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx2 avx512f avx512bw\n"
    assert re.fullmatch(r"AMD EPYC, \d+ cores?, AVX2 \(no AVX-512\)", cpu_description(epyc))
    assert re.fullmatch(r"Intel\(R\) Xeon\(R\) Platinum 8480\+, \d+ cores?, AVX2, AVX-512", cpu_description(xeon))
    assert re.fullmatch(r"Old CPU, \d+ cores?, no AVX2", cpu_description("model name\t: Old CPU\nflags\t: sse2\n"))
    assert ", " in cpu_description("")  # no /proc/cpuinfo: the platform's name and the cores
    line = machine_line()
    assert re.search(r", torch \d+\.\d+", line) and line.startswith(cpu_description().split(",")[0])

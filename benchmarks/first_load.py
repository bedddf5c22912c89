"""First load: the bytes the page sends and the time until the Boxes tab can be used, in Chromium.

    python -m benchmarks.first_load [--repeat 5] [--port 7960]

Starts the dashboard twice, side by side: as it is (each tab's pictures sent when the tab is first
opened, the page and its config compressed) and with the pictures sent as before issue 17
(``VISION_LAB_EAGER_PAGE=1``: every picture in the first response, uncompressed). Then, ``--repeat``
times, alternating between the two so that any change in the machine's load hits both alike, a
fresh Chromium context (empty cache) opens the page and waits until the Boxes table shows its
first row and the Boxes figure holds its photo and boxes (its picture has loaded; plotly had drawn
them before issue 17: the tab is usable). Prints the machine and its load average, the bytes of ``/`` and ``/config`` (as sent and
decoded), and per page the median of: the time from navigation to the table, to the figure, the
bytes the browser received until then, the renderer's main-thread busy time (CDP's
TaskDuration), and the CPU seconds Chromium's processes and the server used for the visit (CPU
time, unlike wall time, hardly grows when other processes share the cores).
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.common import machine_line, print_table

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VISION_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 900}
START_LIMIT_S = 900  # a server that has not answered by then is broken, not slow

# Marks, in ms since navigation start, of what the learner sees: set by a MutationObserver as the
# page builds itself (no polling from outside, which would cost the page's own thread).
MARKS = """
window.__marks = {};
const mark = (k) => { if (!(k in window.__marks)) window.__marks[k] = performance.now(); };
new MutationObserver(() => {
  if (document.querySelector('#boxes-table [data-testid="cell-0-1"]')) mark('table');
  // The figure: a picture since issue 17 (a plotly figure before; either counts once drawn).
  const img = document.querySelector('#boxes-figure img');
  const plot = document.querySelector('#boxes-figure .js-plotly-plot');
  if ((img && img.complete && img.naturalWidth > 0)
      || (plot && plot.data && Array.from(plot.data).some(t => t.type === 'scatter'))) mark('figure');
}).observe(document, {subtree: true, childList: true, attributes: true});
// A picture that finishes loading changes no attribute: its load event marks it.
document.addEventListener('load', (e) => {
  if (e.target.closest && e.target.closest('#boxes-figure')) mark('figure');
}, true);
"""


def fetch(url: str, compressed: bool) -> tuple[int, int]:
    """(bytes as sent, bytes decoded) of a GET, asking for compression like a browser or not."""
    headers = {"Accept-Encoding": "gzip, deflate, br"} if compressed else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=START_LIMIT_S) as response:
        sent, encoding = response.read(), response.headers.get("Content-Encoding")
    return len(sent), len(gzip.decompress(sent) if encoding == "gzip" else sent)


def start_server(port: int, eager: bool) -> subprocess.Popen:
    env = {**os.environ, "VISION_LAB_EAGER_PAGE": "1" if eager else "0", "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {server.returncode}")
        try:
            urllib.request.urlopen(url + "config", timeout=30).read()
            return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"{url} did not answer within {START_LIMIT_S} s")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _chromium_pids() -> list[int]:
    """This benchmark's Chromium processes (browser, renderers, helpers): descendants of this process
    named chromium or chrome (Linux /proc; an empty list elsewhere)."""
    parents, names = {}, {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    head, tail = f.read().rsplit(")", 1)
                parents[int(entry)], names[int(entry)] = int(tail.split()[1]), head.split("(", 1)[1]
            except (OSError, IndexError, ValueError):
                continue
    mine, me = [], os.getpid()
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != me:
            ancestor = parents.get(ancestor)
        if ancestor == me and names[pid].startswith(("chromium", "chrome")):
            mine.append(pid)
    return mine


def open_once(browser, url: str, server_pid: int) -> dict[str, float]:
    """One first visit (a fresh context, nothing cached): milliseconds to the table and to the
    figure, bytes received until both were there, the renderer's busy time, and the CPU seconds
    Chromium and the server used for the visit (CPU time, unlike wall time, does not grow when
    other processes share the cores)."""
    before = {pid: _cpu_s(pid) for pid in _chromium_pids()}
    server_before = _cpu_s(server_pid)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.add_init_script(MARKS)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(url)
        page.wait_for_function("() => window.__marks && 'table' in window.__marks && 'figure' in window.__marks",
                               polling=250, timeout=START_LIMIT_S * 1000)
        marks = page.evaluate("window.__marks")
        received = page.evaluate("""() => performance.getEntriesByType('navigation')[0].transferSize
            + performance.getEntriesByType('resource').reduce((n, r) => n + r.transferSize, 0)""")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        chromium_cpu = sum(_cpu_s(pid) - before.get(pid, 0.0) for pid in _chromium_pids())
        return {"table": marks["table"], "figure": marks["figure"], "usable": max(marks["table"], marks["figure"]),
                "received": received, "busy": metrics["TaskDuration"] * 1000, "chromium_cpu": chromium_cpu * 1000,
                "server_cpu": (_cpu_s(server_pid) - server_before) * 1000}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--port", type=int, default=7960, help="the first of the two ports used")
    args = parser.parse_args()
    print(machine_line())
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")

    from playwright.sync_api import sync_playwright

    pages = {"today (lazy pictures, compressed)": False, "eager pictures, uncompressed": True}
    servers = {name: (f"http://127.0.0.1:{args.port + i}/", start_server(args.port + i, eager))
               for i, (name, eager) in enumerate(pages.items())}
    try:
        for url, server in servers.values():
            wait_until_up(url, server)
        rows = []
        for name, (url, _) in servers.items():
            for path in ("", "config"):
                sent, decoded = fetch(url + path, compressed=True)
                rows.append([name, f"/{path}", f"{sent / 1000:.0f} kB", f"{decoded / 1000:.0f} kB"])
        print_table(rows, ["page", "path", "sent", "decoded"])
        print()

        runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            for name, (url, server) in servers.items():
                open_once(browser, url, server.pid)  # warm-up: the servers' first page and Python's first calls
            for _ in range(args.repeat):
                for name, (url, server) in servers.items():
                    runs[name].append(open_once(browser, url, server.pid))
            browser.close()
    finally:
        for _, server in servers.values():
            server.terminate()
            server.wait(timeout=60)

    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    rows = [[name, f"{m['table'] / 1000:.2f} s", f"{m['figure'] / 1000:.2f} s", f"{m['usable'] / 1000:.2f} s",
             f"{m['received'] / 1000:.0f} kB", f"{m['busy'] / 1000:.2f} s", f"{m['chromium_cpu'] / 1000:.2f} s",
             f"{m['server_cpu'] / 1000:.2f} s"] for name, m in med.items()]
    print(f"median of {args.repeat} first visits, Chromium {VIEWPORT['width']} x {VIEWPORT['height']}, "
          "alternating between the two pages:")
    print_table(rows, ["page", "table shown", "figure drawn", "Boxes usable", "received until then",
                       "renderer busy", "Chromium CPU", "server CPU"])
    today, before = (med[name] for name in servers)
    print(f"\nBoxes usable: {before['usable'] / today['usable']:.1f}x sooner; bytes received until then: "
          f"{before['received'] / today['received']:.1f}x fewer")
    print(f"all usable times (s), today: {[round(r['usable'] / 1000, 2) for r in runs[next(iter(servers))]]}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")


if __name__ == "__main__":
    main()

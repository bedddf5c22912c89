"""The queue's door (panels/admission.py): clear answers for unknown endpoints and wrong argument
counts, sessions bound to their address (a forged Stop is refused), room for light calls behind
heavy ones, per-visitor limits and unread jobs dropped on a shared server, and the time limit of
one heavy job (panels/deployment.py, panels/streaming.py).

Nothing here measures time: each wait polls for a state and only HANG_GUARD_S ends a hung one.
Other visitors are other source addresses on the loopback (127.0.0.x), which Linux routes to the
server on 127.0.0.1.
"""

import inspect
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client

from tests.conftest import HANG_GUARD_S

pytestmark = pytest.mark.app


def _api(app_url: str) -> str:
    return app_url.rstrip("/") + "/gradio_api"


def _from(address: str) -> httpx.Client:
    """An HTTP client whose requests come from ``address`` (another visitor)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=HANG_GUARD_S)


def _fn_index(api_name: str) -> int:
    import app

    return next(i for i, fn in app.demo.fns.items() if fn.api_name == api_name)


def _queue():
    import app

    return app.demo._queue


POLL_S = 0.02


def _wait_for(condition, what: str) -> None:
    """Poll ``condition`` until it holds. The number of polls is bounded only so that a hung server
    ends the test (HANG_GUARD_S of sleeping at the least); no clock is read, so no speed is checked."""
    for _ in range(int(HANG_GUARD_S / POLL_S)):
        if condition():
            return
        time.sleep(POLL_S)
    pytest.fail(f"never happened: {what} (hang guard)")


def _style_data(app_url: str, steps: int, height: int = 32) -> list:
    """/style_transfer's inputs as raw JSON: the page's defaults (its example pictures, already in
    Gradio's cache on this server: no URL is given, so nothing is fetched), ``steps`` and ``height``."""
    info = httpx.get(_api(app_url) + "/info", timeout=HANG_GUARD_S).json()["named_endpoints"]["/style_transfer"]
    data = []
    for p in info["parameters"]:
        value = p.get("parameter_default")
        if isinstance(value, dict) and "path" in value:
            value = {"path": value["path"], "meta": {"_type": "gradio.FileData"}}
        data.append({"steps": steps, "height": height}.get(p["parameter_name"], value))
    return data


def _heavy_events():
    return [e for e in list(_queue().event_ids_to_events.values()) if e.fn.concurrency_id == "heavy"]


# --- the hook into Gradio, pinned ------------------------------------------------------------------


def test_the_private_gradio_hook_admission_relies_on_is_still_there(app_url):
    # panels/admission.py wraps Queue.push and reads the queue's own bookkeeping. Should an upgrade
    # of Gradio rename, move or reshape any of it, this fails, rather than every visitor being
    # admitted unchecked.
    from gradio import queueing, route_utils, routes

    from panels import admission

    assert list(inspect.signature(queueing.Queue.push).parameters) == ["self", "body", "request", "username"]
    source = inspect.getsource(routes.App.create_app)
    assert "blocks._queue.push(" in source and "body=body, request=request, username=username" in source
    assert '@router.post("/call/{api_name}"' in source and '@router.post("/queue/join"' in source
    assert list(inspect.signature(queueing.Queue.clean_events).parameters) == ["self", "session_hash", "event_id"]
    assert issubclass(route_utils.FnIndexInferError, Exception)
    queue = _queue()
    for name in ("event_ids_to_events", "event_queue_per_concurrency_id", "pending_messages_per_session",
                 "pending_event_ids_session", "blocks"):
        assert hasattr(queue, name), name
    assert set(inspect.signature(queueing.Event.__init__).parameters) >= {"session_hash", "fn", "request"}
    # Installed on the dashboard's queue (app.build_demo), once.
    assert isinstance(queue.push.__self__, admission.Admission)
    assert admission.install(__import__("app").demo) is queue.push.__self__
    # Every Stop of the page is always admitted.
    import app

    stops = {fn.api_name for fn in app.demo.fns.values() if fn.api_name and fn.api_name.endswith("_stop")}
    assert stops == admission.STOP_ENDPOINTS


# --- item 6: unknown endpoints and wrong argument counts --------------------------------------------


def test_unknown_endpoints_and_wrong_argument_counts_are_answered_with_a_message(app_url):
    api = _api(app_url)
    with httpx.Client(timeout=HANG_GUARD_S) as http:
        r = http.post(api + "/call/no_such_tool", json={"data": []})
        assert r.status_code == 404, r.text
        assert "No endpoint named '/no_such_tool'" in r.json()["detail"] and "本应用没有" in r.json()["detail"]
        r = http.post(api + "/queue/join", json={"data": [], "fn_index": 99999, "session_hash": "vl-test-unknown"})
        assert r.status_code == 404 and "No endpoint named 'fn_index 99999'" in r.json()["detail"], r.text
        r = http.post(api + "/call/boxes_example", json={"data": ["astronaut"]})
        assert r.status_code == 400, r.text
        assert "/boxes_example takes 3 input value(s)" in r.json()["detail"] and "got 1" in r.json()["detail"]
        assert "收到 1 个" in r.json()["detail"]
        r = http.post(api + "/queue/join", json={"data": ["astronaut", "xyxy", "pixels", "extra"],
                                                  "fn_index": _fn_index("boxes_example"), "session_hash": "vl-test-n"})
        assert r.status_code == 400 and "got 4" in r.json()["detail"], r.text
        # and a right call is answered right after
        r = http.post(api + "/call/boxes_example", json={"data": ["astronaut", "xyxy", "pixels"]})
        assert r.status_code == 200, r.text
        answer = http.get(api + "/call/boxes_example/" + r.json()["event_id"]).text
        assert answer.startswith("event: complete"), answer[:300]


# --- item 4: a session belongs to the address that first used it --------------------------------------


def test_a_forged_stop_from_another_address_is_refused_and_the_owner_can_stop(app_url, monkeypatch):
    from panels import ssd as S
    from vision_core import ssd as vssd

    begun, release = [], {2: threading.Event(), 3: threading.Event()}
    holding = {2: threading.Event(), 3: threading.Event()}
    batch = vssd._SSDEpochs.train_batch

    def held_batch(self, *args, **kwargs):
        begun.append(True)
        n = len(begun)
        if n in holding:  # batches 2 and 3 wait here, so the test sees the run at each
            holding[n].set()
            release[n].wait(HANG_GUARD_S)
        return batch(self, *args, **kwargs)

    monkeypatch.setattr(vssd._SSDEpochs, "train_batch", held_batch)
    owner = Client(app_url, verbose=False)
    job = owner.submit(3, 10, 0.001, 30, "adamw", api_name="/ssd_train")  # 3 epochs of 3 batches
    try:
        assert holding[2].wait(HANG_GUARD_S), "training never started"
        api = _api(app_url)
        with _from("127.0.0.2") as other:
            forged = other.post(api + "/queue/join", json={"data": [], "fn_index": _fn_index("ssd_stop"),
                                                             "session_hash": owner.session_hash})
            assert forged.status_code == 403, forged.text
            assert "belongs to another visitor" in forged.json()["detail"] and "另一位访客" in forged.json()["detail"]
            forged = other.post(api + "/call/ssd_stop", json={"data": [], "session_hash": owner.session_hash})
            assert forged.status_code == 403, forged.text
            # Nor may it read the session's progress and results (Gradio streams them by hash).
            read = other.get(api + "/queue/data", params={"session_hash": owner.session_hash})
            assert read.status_code == 403 and "另一位访客" in read.json()["detail"], read.text
        release[2].set()
        # The training went on past the forged Stops: its third batch began.
        assert holding[3].wait(HANG_GUARD_S), "the training stopped: the forged Stop reached it"
        assert owner.predict(api_name="/ssd_stop") == S.sessions.stops.stopping  # its own Stop works
        release[3].set()
        final = job.result(timeout=HANG_GUARD_S)
    finally:
        for event in release.values():
            event.set()
    assert final[2].startswith("**Stopped.**") and "step 3/9" in final[2], final[2]


def test_the_result_of_a_bare_call_is_read_by_its_caller_only(app_url):
    api = _api(app_url)
    with _from("127.0.0.1") as caller, _from("127.0.0.3") as other:
        posted = caller.post(api + "/call/ssd_stop", json={"data": []})  # no session hash: Gradio makes one
        assert posted.status_code == 200, posted.text
        event_id = posted.json()["event_id"]
        stolen = other.get(f"{api}/call/ssd_stop/{event_id}")
        assert stolen.status_code == 403, stolen.text
        answer = caller.get(f"{api}/call/ssd_stop/{event_id}").text
    assert answer.startswith("event: complete") and "Nothing is training" in answer, answer[:300]


# --- item 2: room for light calls, per-visitor limits, unread jobs dropped, one job's length ------------


@pytest.fixture
def held_style_transfer(monkeypatch):
    """The first style transfer's second step waits until released; the next ones run freely."""
    from vision_core import style as vstyle

    running, release, held = threading.Event(), threading.Event(), []
    step = vstyle._Run.step

    def held_step(self, k):
        if k == 2 and not held:
            held.append(True)
            running.set()
            release.wait(HANG_GUARD_S)
        return step(self, k)

    monkeypatch.setattr(vstyle._Run, "step", held_step)
    yield running, release
    release.set()
    _wait_for(lambda: not _heavy_events(), "the style transfers finished")


def test_light_calls_find_room_behind_any_number_of_heavy_jobs(app_url, monkeypatch, held_style_transfer):
    from panels import admission

    monkeypatch.setattr(admission, "MAX_HEAVY_WAITING", 2)  # the rule, on a small number
    running, _ = held_style_transfer
    api, data = _api(app_url), _style_data(app_url, steps=3)
    with httpx.Client(timeout=HANG_GUARD_S) as http:
        first = http.post(api + "/call/style_transfer", json={"data": data})
        assert first.status_code == 200, first.text
        assert running.wait(HANG_GUARD_S), "the first style transfer never started"
        answers = [http.post(api + "/call/style_transfer", json={"data": data}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 503], [a.text for a in answers]
        assert "already wait on this server (at most 2)" in answers[2].json()["detail"]
        # a light call is still answered
        r = http.post(api + "/call/boxes_example", json={"data": ["astronaut", "xyxy", "pixels"]})
        assert r.status_code == 200, r.text
        assert http.get(api + "/call/boxes_example/" + r.json()["event_id"]).text.startswith("event: complete")


def test_a_visitor_may_have_two_heavy_jobs_on_a_shared_server_and_always_stop(app_url, monkeypatch,
                                                                            held_style_transfer):
    from panels import admission

    monkeypatch.setenv("VISION_LAB_SHARED", "1")
    running, _ = held_style_transfer
    api, data = _api(app_url), _style_data(app_url, steps=3)
    with _from("127.0.0.3") as visitor:
        session = {"session_hash": "vl-test-visitor-3"}
        codes = []
        for _ in range(admission.MAX_HEAVY_PER_VISITOR + 1):
            r = visitor.post(api + "/call/style_transfer", json={"data": data, **session})
            codes.append(r.status_code)
            if len(codes) == 1:
                assert running.wait(HANG_GUARD_S), "the first style transfer never started"
        assert codes == [200] * admission.MAX_HEAVY_PER_VISITOR + [429], codes
        detail = r.json()["detail"]
        assert (f"You already have {admission.MAX_HEAVY_PER_VISITOR} training or style-transfer job(s) waiting or "
                "running") in detail
        assert "press its Stop button" in detail and "停止" in detail
        stop = visitor.post(api + "/call/style_stop", json={"data": [], **session})
        assert stop.status_code == 200, stop.text  # the way out is never refused
        # another visitor is not held back by this one's share
        with _from("127.0.0.4") as other:
            r = other.post(api + "/call/boxes_example", json={"data": ["astronaut", "xyxy", "pixels"]})
            assert r.status_code == 200, r.text
    # Stop reached the running job (it was this session's), so the next one runs and all finish.


def test_a_visitor_jobs_of_any_kind_are_limited_on_a_shared_server_only(monkeypatch):
    # The count rule on its own, with made-up queued events (a real queue empties too fast to hold 16).
    from panels import admission

    def event(host, heavy=False, alive=True):
        fn = SimpleNamespace(concurrency_id="heavy" if heavy else "default", api_name="x")
        return SimpleNamespace(alive=alive, fn=fn, session_hash="s",
                               request=SimpleNamespace(client=SimpleNamespace(host=host), headers={}))

    events = [event("10.0.0.1") for _ in range(admission.MAX_JOBS_PER_VISITOR)] + [event("10.0.0.1", alive=False)]
    queue = SimpleNamespace(event_ids_to_events={str(i): e for i, e in enumerate(events)},
                            event_queue_per_concurrency_id={})
    door = admission.Admission(queue, push=None)
    light = SimpleNamespace(concurrency_id="default", api_name="boxes")
    monkeypatch.setenv("VISION_LAB_SHARED", "0")
    door._check_room(light, "10.0.0.1")  # a local single user: no per-visitor limit
    monkeypatch.setenv("VISION_LAB_SHARED", "1")
    door._check_room(light, "10.0.0.2")  # another visitor
    door._check_room(SimpleNamespace(concurrency_id="default", api_name="ssd_stop"), "10.0.0.1")  # Stop
    with pytest.raises(Exception) as refused:
        door._check_room(light, "10.0.0.1")
    assert refused.value.status_code == 429 and f"You already have {admission.MAX_JOBS_PER_VISITOR} requests" in (
        refused.value.detail)


def test_unread_jobs_are_dropped_on_a_shared_server_and_the_queue_empties(app_url, monkeypatch):
    # The attack of issue 16: bare POSTs of long style transfers whose results are never fetched.
    # Ten visitors (addresses) send one each; none reads. A light call is answered, and every one
    # of the ten leaves the queue, the running one included, without running its 2000 steps.
    from panels import admission

    monkeypatch.setenv("VISION_LAB_SHARED", "1")
    monkeypatch.setattr(admission, "UNREAD_GRACE_S", 1.0)  # the setting, shortened for the test
    api, data = _api(app_url), _style_data(app_url, steps=2000)
    ids = []
    for k in range(10):
        with _from(f"127.0.1.{k + 1}") as visitor:
            r = visitor.post(api + "/call/style_transfer", json={"data": data})
            assert r.status_code == 200, r.text
            ids.append(r.json()["event_id"])
    # The light call is read, however slowly a busy machine gets to its GET: only a hung one is dropped.
    monkeypatch.setattr(admission, "UNREAD_GRACE_S", HANG_GUARD_S)
    with httpx.Client(timeout=HANG_GUARD_S) as http:
        r = http.post(api + "/call/boxes_example", json={"data": ["astronaut", "xyxy", "pixels"]})
        assert r.status_code == 200, r.text
        assert http.get(api + "/call/boxes_example/" + r.json()["event_id"]).text.startswith("event: complete")
    _wait_for(lambda: not set(ids) & set(_queue().event_ids_to_events), "the unread style transfers left the queue")
    assert len(_queue()) == 0


def test_a_job_whose_results_are_read_is_kept_on_a_shared_server(app_url, monkeypatch, held_style_transfer):
    # gradio_client reads its session's event stream, as the page does: the job is held in its
    # second step until the door's watch over it has ended, then runs to its end.
    from panels import admission

    monkeypatch.setenv("VISION_LAB_SHARED", "1")
    # The watch ends when the client is seen reading, however slow the machine; only a client that
    # never reads would reach the grace (the hang guard), and the job would then be dropped.
    monkeypatch.setattr(admission, "UNREAD_GRACE_S", HANG_GUARD_S)
    running, release = held_style_transfer
    job = Client(app_url, verbose=False).submit(*_client_style_args(app_url, steps=3), api_name="/style_transfer")
    assert running.wait(HANG_GUARD_S), "the style transfer never started"
    _wait_for(lambda: not _queue().push.__self__._watchers, "the watch over the job ended")
    release.set()
    final = job.result(timeout=HANG_GUARD_S)
    assert str(final[2]).startswith("**Done.** Step 3/3"), final[2]


def _client_style_args(app_url: str, steps: int) -> list:
    from gradio_client import handle_file

    return [handle_file(v["path"]) if isinstance(v, dict) else v for v in _style_data(app_url, steps)]


def test_a_heavy_job_stops_at_the_servers_time_limit_and_says_so(app_url, monkeypatch):
    # A limit of a nanosecond: each job is stopped before its first step, through Stop's own path,
    # and its status says it met the server's limit and how to run longer.
    monkeypatch.setenv("VISION_LAB_JOB_LIMIT_S", "1e-9")
    client = Client(app_url, verbose=False)
    style = client.submit(*_client_style_args(app_url, steps=50), api_name="/style_transfer").result(
        timeout=HANG_GUARD_S)
    assert str(style[2]).startswith("**Stopped at this server's limit of"), style[2]
    assert "Stopped after 0 of 50 steps" in str(style[2]) and "`python app.py`" in str(style[2])
    assert "已达到本服务器" in str(style[2])
    ssd = client.submit(3, 10, 0.001, 30, "adamw", api_name="/ssd_train").result(timeout=HANG_GUARD_S)
    assert ssd[2].startswith("**Stopped at this server's limit of") and "step 0/9" in ssd[2], ssd[2]


def test_the_job_flag_sets_itself_at_the_deadline_and_stop_stays_stop():
    from panels.streaming import JobFlag, outcome
    from vision_core.progress import Progress

    now = [100.0]
    flag = JobFlag(60.0, clock=lambda: now[0])
    now[0] = 159.0
    assert not flag.is_set()
    now[0] = 160.0
    assert flag.is_set() and flag.out_of_time
    last = Progress(5, 10, {}, message="stopped", done=True)
    assert outcome(last, flag).startswith("**Stopped at this server's limit of 60 s per job.**")
    pressed = JobFlag(60.0, clock=lambda: now[0])
    pressed.set()  # Stop pressed before the deadline
    now[0] = 1000.0
    assert pressed.is_set() and not pressed.out_of_time and outcome(last, pressed) == "**Stopped.**"
    assert not JobFlag(None).is_set()  # no limit: only Stop sets it
    assert outcome(Progress(10, 10, {}, message="done", done=True), flag) == "**Done.**"


def test_the_time_limit_is_for_shared_servers_and_an_operator_can_change_it(monkeypatch):
    from panels import deployment

    monkeypatch.delenv("VISION_LAB_JOB_LIMIT_S", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("VISION_LAB_SHARED", "0")
    assert deployment.job_limit_s() is None  # a local single user
    monkeypatch.setenv("VISION_LAB_SHARED", "1")
    assert deployment.job_limit_s() == deployment.JOB_LIMIT_S
    monkeypatch.setenv("VISION_LAB_JOB_LIMIT_S", "0")
    assert deployment.job_limit_s() is None  # the operator lifts it
    monkeypatch.setenv("VISION_LAB_JOB_LIMIT_S", "3600")
    assert deployment.job_limit_s() == 3600
    monkeypatch.setenv("VISION_LAB_JOB_LIMIT_S", "ten minutes")
    with pytest.raises(ValueError):
        deployment.job_limit_s()


def test_the_page_states_the_public_servers_limits_when_shared(monkeypatch):
    import app
    from panels import admission
    from panels.i18n import chinese, english

    note = app._limits_note()
    assert "stops after 10 min" in english(note) and f"{admission.MAX_HEAVY_PER_VISITOR} at a time" in english(note)
    assert "10 分钟后停止" in chinese(note)
    monkeypatch.setenv("VISION_LAB_SHARED", "1")
    assert app._page_top()[1].visible is True
    monkeypatch.setenv("VISION_LAB_SHARED", "0")
    assert app._page_top()[1].visible is False

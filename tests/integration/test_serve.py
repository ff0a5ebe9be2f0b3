"""``eventmodel serve`` as an operator runs it: a real process on loopback over a log the
simulated cloud filled (SQLite and Kafka); its answers checked against the projection
rebuilt in this process. The fuzzing runs against the same application in-process."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import anyio.from_thread
import attrs
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel.clock import now_us
from eventmodel.log import open_log
from eventmodel.log.base import DeadLetter, Position
from eventmodel.serve.app import create_app
from eventmodel.serve.service import ModelService
from eventmodel.sim.cloud import SimCloud
from eventmodel.sim.faults import Faults
from eventmodel.sources.nova import NovaNormalizer
from projections.checkpoint import Checkpointer
from projections.export import to_document
from projections.replay import diff, history, model_at
from tests.fixtures.polling import wait_until
from tests.fixtures.serve import ServeProcess, fill_with_demo, metric_values

SECRET = "S3cr3t-never-shown-0xfeed"


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'events.db'}"
    fill_with_demo(url)
    # a dead letter whose bytes and reason carry credentials, as a careless source might store them
    raw = (b'{"oslo.version": "2.0", "oslo.message": "{\\"_context_auth_token\\": \\"' + SECRET.encode()
           + b'\\", \\"event_type\\": \\"instance.update\\", \\"payload\\": 7}"}')
    open_log(url).append_dead_letters([DeadLetter.of(
        raw, f"instance.update: payload is not an object (from amqp://nova:{SECRET}@rabbit:5672/)", "amqp", now_us())])
    return url


@pytest.fixture(scope="module")
def served(demo_url: str) -> ServeProcess:
    """One serve process for the module (lag sampled every 0.1 s, ready within 5 s)."""
    with ServeProcess(demo_url, "--ready-lag", "5", "--sample-every", "0.1") as serve:
        serve.wait_ready()
        yield serve  # type: ignore[misc]


def _all_pages(serve: ServeProcess, path: str, limit: int) -> list[dict]:
    items, cursor, positions = [], None, set()
    sep = "&" if "?" in path else "?"
    while True:
        page = serve.json(f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        positions.add(page["position"])
        items.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            assert len(positions) == 1  # nothing moved: one position for every page
            return items


def test_api_answers_what_the_projection_holds(demo_url: str, served: ServeProcess) -> None:
    serve = served
    log = open_log(demo_url)
    model = model_at(log)
    end = str(log.end())
    status = serve.json("/api/status")
    assert status["position"] == end and status["ready"] and status["stale"] is None
    assert status["counts"]["instance"] == len(model.instances())
    assert status["lag"]["records"] == 0 and status["lag"]["partitions"][0]["end"] == log.end().total
    assert status["last_sync"]["observed"] == model.last_snapshot.observed

    nodes = _all_pages(serve, "/api/nodes", 3)
    assert [n["name"] for n in nodes] == sorted(model.compute_nodes().keys())
    for n in nodes:
        used, cap = model.node_used(n["name"]), model.node_capacity(n["name"])
        assert n["used"] == attrs.asdict(used) and n["capacity"] == attrs.asdict(cap)
        assert n["instances"] == model.node_instance_count(n["name"])
        st_ = model.node_status(n["name"])
        assert (n["disabled"], n["up"], n["zone"]) == (st_.disabled, st_.up, st_.zone)
    busiest = max(nodes, key=lambda n: n["instances"])
    one = serve.json(f"/api/nodes/{busiest['name']}")
    assert one["node"] == busiest and one["position"] == end

    on_node = _all_pages(serve, f"/api/instances?node={busiest['name']}", 4)
    assert sorted(i["uuid"] for i in on_node) == sorted(i.uuid for i in model.node_instances(busiest["name"]))
    everything = _all_pages(serve, "/api/instances", 1000)
    assert [i["uuid"] for i in everything] == sorted(model.instances().keys())
    active = serve.json("/api/instances?state=active&limit=5000")
    assert active["total"] == sum(1 for i in model.instances().values() if i.vm_state == "active")

    uuid = everything[len(everything) // 2]["uuid"]
    inst = serve.json(f"/api/instances/{uuid}")
    assert inst["instance"]["node"] == model.instance(uuid).node and inst["position"] == end
    hist = serve.json(f"/api/history/instance/{uuid}?limit=2")
    records = list(history(log, uuid))
    assert [h["offset"] for h in hist["items"]] == [r.offset for r in records[::-1][:2]]  # newest first
    assert [h["offset"] for h in _all_pages(serve, f"/api/history/instance/{uuid}", 2)] == \
        [r.offset for r in reversed(records)]

    mid = Position((log.end().total // 2,))
    changes = serve.json(f"/api/diff?from={mid}&limit=5000")
    assert changes["total"] == len(diff(model_at(log, to=mid), model)) and changes["to"] == end

    exported = serve.json("/api/export")
    doc = to_document(model)
    assert {k: v for k, v in exported.items() if k != "exported_at"}.keys() == \
        {k for k in doc if k != "exported_at"}
    assert [i["uuid"] for i in exported["instances"]] == sorted(model.instances().keys())
    past = serve.json(f"/api/export?at={mid}")
    assert past["position"] == str(mid) and len(past["instances"]) == len(model_at(log, to=mid).instances())

    dead = serve.json("/api/deadletters")
    assert dead["total"] == 1 and dead["items"][0]["reason"].startswith("instance.update")
    for path in ("/api/deadletters", "/api/status", "/metrics"):
        assert SECRET not in serve.get(path).text, path


@pytest.mark.parametrize("path, status, words", [
    ("/api/nodes/no-such-node", 404, "no compute node"),
    ("/api/instances/0000", 404, "no instance"),
    ("/api/history/instance/nope", 404, "no events"),
    ("/api/history/flavor/x", 404, "unknown kind"),
    ("/api/instances?node=nowhere", 404, "no compute node"),
    ("/api/nope", 404, "no such path"),
    ("/api/diff?from=banana", 400, "neither a position"),
    ("/api/diff?from=99999999", 400, "past the end"),
    ("/api/diff?from=0:1,1:2", 400, "partition"),
    ("/api/diff", 400, "from is required"),
    ("/api/export?at=-3", 400, "negative"),
    ("/api/export?at=2026-13-45T99:00Z", 400, "ISO 8601"),
    ("/api/nodes?limit=0", 400, "limit"),
    ("/api/nodes?limit=ten", 400, "limit"),
    ("/api/nodes?status=sideways", 400, "status"),
    ("/api/search", 400, "q"),
])
def test_bad_input_gets_a_clear_4xx(demo_url: str, served: ServeProcess, path: str, status: int, words: str) -> None:
    r = served.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert words in r.json()["error"]


def _fresh_records(n_ops: int, age_s: float) -> list:
    """Events from another simulated cloud, recorded ``age_s`` seconds ago."""
    sim = SimCloud(4, 20, seed=11, faults=Faults.kind(), start_time_us=now_us())
    normalizer = NovaNormalizer()
    out = []
    for raw in sim.step(n_ops) + sim.flush():
        o = normalizer.normalize(raw, recorded_at=now_us() - int(age_s * 1e6))
        if o.status == "events":
            out.extend(o.events)
    return out


def test_lag_rises_while_the_follower_is_held_and_falls_after(demo_url: str, served: ServeProcess) -> None:
    serve = served
    log = open_log(demo_url)
    serve.wait_ready()
    before = metric_values(serve.get("/metrics").text, "eventmodel_records_folded_total")[()]
    assert before == log.end().total
    serve.signal(signal.SIGUSR2)  # hold
    wait_until(lambda: serve.json("/api/status")["held"], 30, "the follower to be held")
    records = _fresh_records(40, age_s=20)
    log.append(records)

    def lagging() -> dict | None:
        text = serve.get("/metrics").text
        lag = metric_values(text, "eventmodel_lag_records")
        return {"text": text} if lag.get((("partition", "0"),)) == len(records) else None

    text = wait_until(lagging, 30, f"lag_records to reach {len(records)}")["text"]
    assert metric_values(text, "eventmodel_lag_seconds")[(("partition", "0"),)] >= 20
    assert metric_values(text, "eventmodel_ready")[()] == 0
    not_ready = serve.get("/readyz")
    assert not_ready.status_code == 503 and "behind the log" in not_ready.json()["reason"]
    assert serve.get("/healthz").status_code == 200  # alive all the same

    serve.signal(signal.SIGUSR2)  # release
    def caught_up() -> str | None:
        text = serve.get("/metrics").text
        return text if metric_values(text, "eventmodel_lag_records").get((("partition", "0"),)) == 0 else None

    text = wait_until(caught_up, 30, "the lag to fall back to 0")
    assert metric_values(text, "eventmodel_records_folded_total")[()] == before + len(records)
    assert metric_values(text, "eventmodel_lag_seconds")[(("partition", "0"),)] == 0
    serve.wait_ready(30)


def test_metrics_parse_and_say_what_the_model_says(demo_url: str, served: ServeProcess) -> None:
    model = model_at(open_log(demo_url))
    text = served.get("/metrics").text
    assert metric_values(text, "eventmodel_entities")[(("kind", "instance"),)] == len(model.instances())
    assert metric_values(text, "eventmodel_last_sync_drift")[()] == model.last_snapshot.corrected
    assert metric_values(text, "eventmodel_last_sync_completed_timestamp_seconds")[()] == \
        model.last_snapshot.completed_at / 1e6
    assert metric_values(text, "eventmodel_stale")[()] == 0
    assert sum(metric_values(text, "eventmodel_dead_letters").values()) == 1
    assert metric_values(text, "eventmodel_log_end")[(("partition", "0"),)] == model.position.total


def test_the_token_guards_everything_but_the_probes(demo_url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    token_file.chmod(0o600)
    ckpt = tmp_path / "ckpt"
    with ServeProcess(demo_url, "--token-file", str(token_file), "--checkpoint-dir", str(ckpt)) as serve:
        assert SECRET not in " ".join(serve.argv)
        serve.wait_ready()
        for path in ("/healthz", "/readyz"):
            assert serve.get(path).status_code == 200
        for path in ("/api/status", "/metrics", "/", "/static/app.js", "/api/nodes"):
            r = serve.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
        assert serve.get("/api/status", headers={"authorization": "Bearer wrong"}).status_code == 401
        ok = serve.get("/api/status", headers={"authorization": f"Bearer {SECRET}"})
        assert ok.status_code == 200 and SECRET not in ok.text
        assert "text/html" in serve.get("/", headers={"accept": "text/html"}).headers["content-type"]  # the form
        with httpx.Client(base_url=serve.url) as browser:  # the page's way in: a form, then a cookie
            assert browser.post("/login", data={"token": "wrong"}).status_code == 401
            signed = browser.post("/login", data={"token": SECRET})
            assert signed.status_code == 303 and SECRET not in signed.headers["set-cookie"]
            assert browser.get("/api/status").status_code == 200
        code, err = serve.stop()
        assert code == 0, err
        assert "stopped; checkpoint written" in "".join(serve.stdout)
    state = Checkpointer(ckpt).load(partitions=1)
    assert state is not None and state.position == open_log(demo_url).end()


def test_unreadable_token_file_is_a_clear_error(demo_url: str, tmp_path: Path) -> None:
    import subprocess

    from tests.fixtures.serve import CLI

    p = subprocess.run([*CLI, "serve", "--log", demo_url, "--token-file", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "cannot read the token file" in p.stderr


def test_serve_over_kafka(kafka_url: str) -> None:
    fill_with_demo(kafka_url, hosts=6, instances=50, seed=5)
    log = open_log(kafka_url)
    model = model_at(log)
    with ServeProcess(kafka_url) as serve:
        serve.wait_ready()
        status = serve.json("/api/status")
        assert status["position"] == str(log.end()) and len(status["lag"]["partitions"]) == 3
        assert status["counts"]["instance"] == len(model.instances())
        nodes = serve.json("/api/nodes?limit=5000")
        assert nodes["total"] == len(model.compute_nodes())
        uuid = sorted(model.instances().keys())[0]
        hist = serve.json(f"/api/history/instance/{uuid}?limit=5000")
        assert len(hist["items"]) == len(list(history(log, uuid))) and len({h["partition"] for h in hist["items"]}) == 1
        assert hist["next"] is None
        text = serve.get("/metrics").text
        lag = metric_values(text, "eventmodel_lag_records")
        assert sorted(lag) == [(("partition", str(p)),) for p in range(3)] and sum(lag.values()) == 0
        bad = serve.get("/api/export?at=12")
        assert bad.status_code == 400 and "3" in bad.json()["error"]
        half = ",".join(f"{p}:{o // 2}" for p, o in enumerate(log.end().offsets))
        past = serve.json(f"/api/export?at={half}")
        assert past["position"] == half
        assert len(past["instances"]) == len(model_at(log, to=Position.parse(half)).instances())
        code, err = serve.stop()
        assert code == 0, err


# -- fuzzing, in-process ------------------------------------------------------------
@pytest.fixture(scope="module")
def client(demo_url: str) -> Callable[..., httpx.Response]:
    """GET on the application in this process (httpx's ASGI transport on one event loop)."""
    service = ModelService(open_log(demo_url), dead_letters_every=3600).start()
    wait_until(lambda: service.readiness()[0], 60, "the in-process service to be ready")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service), raise_app_exceptions=False),
                             base_url="http://serve.test")
    with anyio.from_thread.start_blocking_portal() as portal:
        yield lambda path, params: portal.call(lambda: http.get(path, params=params))  # type: ignore[misc]
        portal.call(http.aclose)
    service.stop()


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_value = st.one_of(
    _text,
    st.integers(-10, 10**12).map(str),
    st.sampled_from(["0", "1", "5", "0:1", "0:1,1:2", "1:0", "", " ", "-1", "2026-11-29T00:00:00Z", "T", "1e3",
                     "9" * 400, "0:", ":0", "0:1,0:2", "%00", "active", "compute-0001.example.org", "nan"]),
)
_params = st.dictionaries(st.sampled_from(["limit", "cursor", "from", "to", "at", "node", "project", "state",
                                           "host", "q", "status", "zone", "aggregate", "bytes"]), _value, max_size=4)
_paths = st.one_of(
    st.sampled_from(["/api/status", "/api/nodes", "/api/instances", "/api/search", "/api/diff", "/api/export",
                     "/api/deadletters", "/readyz", "/healthz", "/metrics"]),
    st.builds(lambda k: f"/api/nodes/{k}", _text),
    st.builds(lambda k: f"/api/instances/{k}", _text),
    st.builds(lambda kind, k: f"/api/history/{kind}/{k}",
              st.sampled_from(["instance", "node", "service", "aggregate", "x", ""]), _text),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(path=_paths, params=_params)
def test_fuzzed_requests_never_get_a_5xx(client: Callable[..., httpx.Response], path: str,
                                         params: dict[str, str]) -> None:
    r = client(quote(path, safe="/"), params)
    assert r.status_code < 500, (path, params, r.status_code, r.text[:300])
    if path.startswith("/api/") and r.status_code >= 400:
        assert r.json()["error"]

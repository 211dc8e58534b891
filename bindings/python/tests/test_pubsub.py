"""shm_channel.pubsub: seed 000's shm_pub_sub API, and seed 000's own examples run as written
(examples/python/pubsub, only the import line changed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import shm_channel as sc
import shm_channel.pubsub as shm_pub_sub
from conftest import REPO, wait_until

EXAMPLES = REPO / "examples" / "python" / "pubsub"


def test_seed_api_bool_int_float(name: str) -> None:
    for default, values in ((False, [True, False]), (0, [42, -7]), (0.0, [3.14159, -1.5])):
        topic = f"{name}-{type(default).__name__}"
        sub = shm_pub_sub.Subscriber(topic, default)
        assert sub.subscribe() == (default, False)  # no publisher yet
        pub = shm_pub_sub.Publisher(topic, default, 3)
        assert sub.subscribe() == (default, False)  # nothing published yet
        for v in values:
            pub.publish(v)
            data, is_success = sub.subscribe()
            assert (data, is_success) == (v, True)
            assert type(data) is type(default)
            assert sub.subscribe() == (v, False)  # not new any more
        assert pub.channel.depth == 3
        pub.close()
        sub.close()


def test_seed_api_types_beyond_seed_000(name: str) -> None:
    np = pytest.importorskip("numpy")
    frame = np.zeros((2, 3), np.float32)
    for default, value in ((b"", b"raw"), ("", "text"), (frame, frame + 1)):
        topic = f"{name}-{type(default).__name__}"
        with (
            shm_pub_sub.Publisher(topic, default) as pub,
            shm_pub_sub.Subscriber(topic, default) as sub,
        ):
            pub.publish(value)
            data, ok = sub.subscribe()
            assert ok
            assert (data == value).all() if isinstance(value, np.ndarray) else data == value


def test_seed_api_wrong_type_and_names(name: str) -> None:
    pub = shm_pub_sub.Publisher(name, 0.0)
    with pytest.raises(sc.TopicTypeError, match=r"f64 \(float\).*i64 \(int\)"):
        shm_pub_sub.Subscriber(name, 0).subscribe()
    with pytest.raises(TypeError, match="not str"):
        pub.publish("hot")
    pub.close()
    # '/' inside a seed 000 topic name maps to '.'.
    topic = f"robot_main/{name}/distance_meters"
    with shm_pub_sub.Publisher(topic, 0.0, 5) as p:
        p.publish(1.25)
        with sc.Subscriber(f"robot_main.{name}.distance_meters", float) as s:
            assert s.latest() == (1.25, True)
    assert shm_pub_sub.channel_name("/a/b") == "/a.b"


@pytest.fixture
def example_dir(tmp_path: Path) -> Iterator[Path]:
    """A segment directory of its own, for the examples and for this process."""
    os.environ["SHM_CHANNEL_DIR"] = str(tmp_path)
    try:
        yield tmp_path
    finally:
        os.environ["SHM_CHANNEL_DIR"] = os.environ["SHM_CHANNEL_TEST_DIR"]


def _example(script: str, segments: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, SHM_CHANNEL_DIR=str(segments), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Kill the example (it runs until stopped), then collect the rest of its output."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    return out, err


def _lines_with(proc: subprocess.Popen[str], text: str, n: int, timeout: float = 30) -> list[str]:
    """Read `proc`'s stdout until `n` lines contain `text`."""
    assert proc.stdout is not None
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {got} after {timeout} s"
        line = proc.stdout.readline()
        assert line, f"{proc.args} ended: {proc.stderr.read() if proc.stderr else ''}"
        if text in line:
            got.append(line)
    return got


def test_seed_examples_temperature_publisher_and_multi_subscriber(example_dir: Path) -> None:
    subs = _example("multi_subscriber.py", example_dir)
    pub = _example("temperature_publisher.py", example_dir)
    try:
        published = _lines_with(pub, "Published temperature:", 3)
        logged = _lines_with(subs, "LOG:", 3)
    finally:
        out_p, err_p = _stop(pub)
        out_s, err_s = _stop(subs)
    assert "Traceback" not in err_p + err_s, err_p + err_s
    temps = {ln.split(": ", 1)[1].strip() for ln in published + out_p.splitlines() if ": " in ln}
    # Every value the subscribers print is one the publisher published.
    for ln in logged + [x for x in out_s.splitlines() if "LOG:" in x or "ALERT" in x]:
        assert ln.rsplit(": ", 1)[1].strip() in temps, (ln, temps)


def test_seed_examples_verification_pair_and_managed_publisher(tmp_path: Path) -> None:
    env = dict(os.environ, SHM_CHANNEL_DIR=str(tmp_path))
    for script in ("test_subscriber.py", "test_publisher.py", "managed_publisher.py"):
        r = subprocess.run(
            [sys.executable, str(EXAMPLES / script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        if script == "test_publisher.py":
            assert r.stdout.splitlines() == [f"Published: {i}" for i in range(10)]
        if script == "test_subscriber.py":  # no publisher running: the default, no success
            assert r.stdout.splitlines() == ["Received: 0, Success: False"] * 10
    assert list(tmp_path.iterdir()) == []  # the closed publishers' topics are gone


def test_seed_examples_robot_network_and_analytics(example_dir: Path) -> None:
    tmp_path = example_dir
    robot = _example("robot_sensor_network.py", tmp_path)
    analytics = _example("data_analytics.py", tmp_path)
    try:
        wait_until(lambda: (tmp_path / "imu_acceleration").exists(), what="robot topics")
        with sc.Subscriber("imu_acceleration", float, create=False) as imu:
            value, _missed = imu.recv(timeout=30)
            assert -2.0 <= value <= 2.0
        with sc.Subscriber("lidar_distance", float, create=False) as lidar:
            assert 0.1 <= lidar.recv(timeout=30)[0] <= 10.0
        # Feed the analytics example's input topic; it publishes moving averages.
        wait_until(lambda: (tmp_path / "analytics_result").exists(), what="analytics")
        with (
            shm_pub_sub.Publisher("sensor_data", 0.0) as feed,
            sc.Subscriber("analytics_result", float, create=False) as result,
        ):
            deadline = time.monotonic() + 30
            while True:
                feed.publish(5.0)
                try:
                    avg, _ = result.recv(timeout=0.02)
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline
            assert avg == 5.0
        _lines_with(analytics, "Analytics: Moving average = 5.000", 1)
        assert robot.poll() is None and analytics.poll() is None
    finally:
        _out_r, err_r = _stop(robot)
        _out_a, err_a = _stop(analytics)
    assert "Traceback" not in err_r + err_a, err_r + err_a


def test_seed_benchmark_example_runs_its_warm_up_then_waits(example_dir: Path) -> None:
    """examples/python/pubsub/README.md: the tutorial's benchmark counts 10 000 successes
    from 10 buffers after publishing everything; with is_success meaning "new", one is new
    and the loop waits for ever. It runs as written (no error), and stays in that loop."""
    bench = _example("benchmark.py", example_dir)
    try:
        wait_until(lambda: (example_dir / "benchmark").exists(), what="benchmark topic")
        wait_until(
            lambda: sc.stat("benchmark").msgs_written == 10100 or bench.poll() is not None,
            what="benchmark published",
        )
        assert bench.poll() is None
    finally:
        _out, err = _stop(bench)
    assert "Traceback" not in err, err

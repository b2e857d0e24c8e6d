"""Multi-worker start-up: TF_CONFIG checked before TensorFlow starts, a deadline for workers that never answer,
SIGTERM during the wait (reliability round 3, items 4, 8 and 18)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from dnnlib.util import UserError
from tests.train_helpers import ROOT
from training.cli.cluster import parse_tf_config, wait_for_peers


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _config(ports, index=0):
    return {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}


@pytest.mark.parametrize("text,needle", [
    ("garbage{", "not valid JSON"),
    ("[1,2]", "must be a JSON object, not list"),
    ('{"task": {"type": "worker", "index": 0}}', "'cluster' is missing"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 5}}', "task.index 5"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": "0"}}', "task.index '0'"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "chief", "index": 0}}', "task.type 'chief'"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "not a host:port"),
    ('{"cluster": {"worker": ["h:99999"]}, "task": {"type": "worker", "index": 0}}', "not a host:port"),
    ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', "job 'ps'"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
    ('{"cluster": {"worker": ["h:1"]}}', "'task' is missing"),
])
def test_malformed_tf_config_is_one_line(text, needle):
    with pytest.raises(UserError, match="^TF_CONFIG: ") as info:
        parse_tf_config(text)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_well_formed_tf_config_names_the_other_tasks():
    config = parse_tf_config('{"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, '
                             '"task": {"type": "worker", "index": 1}}')
    assert config.address == "c:3" and config.peers() == {"chief 0": "a:1", "worker 0": "b:2"}


def _run_network(tf_config, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=tf_config)
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_network.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_refuses_a_bad_tf_config_before_tensorflow_starts(tmp_path):
    res = _run_network("[1,2]", "--train", "--dataset", "shapes", "--result-dir", str(tmp_path), timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("error: TF_CONFIG: must be a JSON object"), res.stderr
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr  # not even TensorFlow's log lines
    assert os.listdir(tmp_path) == []


def test_workers_that_never_answer_stop_the_run_at_the_deadline(tmp_path):
    import json
    ports = _free_ports(3)
    start = time.time()
    res = _run_network(json.dumps(_config(ports)), "--train", "--dataset", "shapes", "--data-dir", str(tmp_path),
                       "--result-dir", str(tmp_path / "r"), "--cluster-timeout", "2", "--metrics", "none")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "--cluster-timeout 2 s" in errors[0], errors[0]
    assert f"worker 1 (localhost:{ports[1]}), worker 2 (localhost:{ports[2]})" in errors[0], errors[0]
    assert time.time() - start < 120 and not os.path.exists(tmp_path / "r")


def test_wait_ends_when_the_peers_answer_and_names_only_the_silent_one():
    ports = _free_ports(3)
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    peer.bind(("127.0.0.1", ports[1]))
    peer.listen(8)
    try:
        with pytest.raises(UserError) as info:
            wait_for_peers(parse_tf_config(__import__("json").dumps(_config(ports))), timeout=0.5, poll=0.1)
        assert f"worker 2 (localhost:{ports[2]})" in str(info.value) and "worker 1" not in str(info.value)
        wait_for_peers(parse_tf_config(__import__("json").dumps(_config(ports[:2]))), timeout=5, poll=0.1)
    finally:
        peer.close()


def test_two_waiting_workers_find_each_other():
    import json
    ports = _free_ports(2)
    errors, done = [], threading.Barrier(2, timeout=60)

    def worker(i):
        try:
            wait_for_peers(parse_tf_config(json.dumps(_config(ports, i))), timeout=30, poll=0.1)
            with socket.socket() as server:  # what TensorFlow's server does next: listen on the same port
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("", ports[i]))
                server.listen(8)
                done.wait()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors and not any(t.is_alive() for t in threads)


def test_sigterm_ends_the_wait():
    import json
    config = parse_tf_config(json.dumps(_config(_free_ports(2))))
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    start = time.time()
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        wait_for_peers(config, timeout=60, poll=0.1)
    assert time.time() - start < 10 and signal.getsignal(signal.SIGTERM) is before  # the handler is restored

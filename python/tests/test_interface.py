import os
import subprocess
import sys

import pytest

from fake import FakeRequest, FakeWorker

import pullman
from pullman import _interface


def test_the_fake_satisfies_the_interface():
    assert isinstance(FakeRequest(), _interface.Request)
    assert isinstance(FakeWorker(), _interface.Worker)


def test_errors_are_what_callers_catch():
    assert issubclass(pullman.Closed, ConnectionError)
    assert issubclass(pullman.WrongState, RuntimeError)
    assert issubclass(pullman.Refused, pullman._errors.Error)


def test_the_installed_package_has_its_native_module(tmp_path):
    # From an empty directory and without the tests' sys.path: the installed package.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", "import pullman, pullman._native as n; print(n.__version__ == pullman.__version__, n.__version__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert out[0] == "True"
    assert out[1][0].isdigit()


def test_the_native_worker_checks_its_redirect_settings():
    from pullman._native import Worker

    with pytest.raises(ValueError, match="respond pools"):
        Worker("tcp://127.0.0.1:1", "p", "t", mode="filter").redirect(0)
    for expiry in (0, -1, float("nan"), 1e300):
        with pytest.raises(ValueError, match="expiry"):
            Worker("tcp://127.0.0.1:1", "p", "t").redirect(0, expiry=expiry)
    over_an_hour = Worker("tcp://127.0.0.1:1", "p", "t")
    over_an_hour.redirect(0, expiry=7200)
    with pytest.raises(ValueError, match="expiry"):
        over_an_hour.check()
    no_host = Worker("unix:///tmp/nowhere.sock", "p", "t")
    no_host.redirect(0)
    with pytest.raises(ValueError, match="redirect host"):
        no_host.check()
    with_host = Worker("unix:///tmp/nowhere.sock", "p", "t")
    with_host.redirect(0, host="worker-3.example")
    with_host.check()


def test_header_fields_are_str_or_bytes_pairs():
    from pullman._native import Request

    request = Request.detached(headers=[(b"host", b"h\xe9"), ["x-a", "b"], ("x-c", b"d")])
    assert request.headers == [("host", "h\u00e9"), ("x-a", "b"), ("x-c", "d")]
    for bad in ([("x", "y", "z")], [("x", 1)], ["xy"], [b"xy"], [("x", "\u0100")]):
        with pytest.raises(ValueError):
            Request.detached(headers=bad)


def test_proxies_name_addresses_or_every_client():
    from pullman._native import Proxies

    local = Proxies("127.0.0.1, ::1")
    assert local.trusts("127.0.0.1:5000") and local.trusts("[::1]:80") and local.trusts("::1")
    assert local.trusts("[::ffff:127.0.0.1]:80"), "an IPv4 client on a dual-stack socket"
    assert not local.trusts("10.0.0.1:80") and not local.trusts("") and not local.trusts("nonsense")
    assert Proxies("*").trusts("203.0.113.9:1")
    assert not Proxies("").trusts("127.0.0.1:1")
    with pytest.raises(ValueError, match="not an IP address"):
        Proxies("10.0.0.0/8")


def test_a_timeout_that_cannot_be_waited_is_refused():
    from pullman import WrongState
    from pullman._native import Worker

    worker = Worker("tcp://127.0.0.1:1", "p", "t")
    for timeout in (-1, float("nan"), float("inf"), 1e300):
        with pytest.raises(ValueError, match="timeout"):
            worker.next(timeout)
        with pytest.raises(ValueError, match="timeout"):
            worker.next_batch(4, timeout)
    with pytest.raises(WrongState):
        worker.next(0)

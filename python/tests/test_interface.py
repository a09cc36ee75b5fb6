import os
import subprocess
import sys

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

"""`make setup` with a python3 it cannot use, reproduced by its condition: too old (macOS's 3.9), too new for the
pins (3.15), or without the venv module (Debian without python3-venv). An interpreter reports that version through a
sitecustomize, or cannot import ensurepip."""

import subprocess
import sys

import pytest

from maintainer.checkout import reader_env

FAKE_VERSION = "import sys\nsys.version_info = ({}, {}, 0, 'final', 0)\n"
NO_ENSUREPIP = "raise ModuleNotFoundError(\"No module named 'ensurepip'\")\n"


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("sitecustomize.py", FAKE_VERSION.format(3, 9), "needs Python 3.10 to 3.14"),
        ("sitecustomize.py", FAKE_VERSION.format(3, 15), "needs Python 3.10 to 3.14"),
        ("ensurepip/__init__.py", NO_ENSUREPIP, "sudo apt install python3-venv"),
    ],
    ids=["python-3.9", "python-3.15", "no-venv-module"],
)
def test_make_setup_with_a_python_it_cannot_use_says_what_to_install(fresh_checkout, module, source, expected):
    (fresh_checkout / ".venv").unlink()  # the test venv's link: make would see the venv built already
    shadow = fresh_checkout.parent / "python-as-the-reader-has-it"
    (shadow / module).parent.mkdir(parents=True, exist_ok=True)
    (shadow / module).write_text(source)

    result = subprocess.run(
        ["make", "setup", f"PYTHON={sys.executable}"],
        cwd=fresh_checkout,
        env=reader_env(PYTHONPATH=str(shadow)),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert expected in error and "PYTHON=" in error, error
    assert not (fresh_checkout / ".venv").exists()

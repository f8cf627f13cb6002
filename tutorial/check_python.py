"""Can this Python build the guide's venv? What `make setup` asks first, so a wrong Python gets one line.

It runs on the interpreter being checked, which may be older than the guide supports: keep it to
syntax that Python 3.6 reads.
"""

import sys

# The Pythons for which every package in requirements.txt has a wheel on Linux, macOS and Windows
# (tests/repository/test_requirements.py checks it). On a newer Python, pip would build numpy from source.
OLDEST = (3, 10)
NEWEST = (3, 14)
PICK_ANOTHER = (
    "install a supported one (python.org, `brew install python@3.13`, `uv python install 3.13`) "
    "and run `make setup PYTHON=python3.13`"
)


def problem() -> str:
    """What stops this Python from building the venv, or '' if nothing does."""
    found = "{}.{}.{}".format(*sys.version_info[:3])
    if not OLDEST <= sys.version_info[:2] <= NEWEST:
        return "the guide needs Python {}.{} to {}.{}, and {} is Python {}: {}".format(
            *OLDEST, *NEWEST, sys.executable, found, PICK_ANOTHER
        )
    try:
        import ensurepip  # noqa: F401  (what `python -m venv` uses to put pip in the venv)
        import venv  # noqa: F401
    except ImportError:
        return (
            "{} (Python {}) cannot create a venv: on Debian or Ubuntu, `sudo apt install python3-venv` "
            "(or python{}.{}-venv); elsewhere, pick another Python with `make setup PYTHON=...`".format(
                sys.executable, found, *sys.version_info[:2]
            )
        )
    return ""


if __name__ == "__main__":
    message = problem()
    if message:
        print("error: " + message, file=sys.stderr)
        sys.exit(2)

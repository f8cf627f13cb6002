"""How `make tutorial` starts a lesson script before the steps it needs have passed: steps 3, 6, 7 and 9.

`python -m tutorial.imports_first model_inferencing.py` imports what the script imports, and what MLflow imports to
load the notebook's models, while the notebook runs (the smoke test: while the server starts). Then it reads from
its stdin the command to run, as the README shows it (`python model_inferencing.py <its arguments>`), and once stdin
ends, runs the script as that command would.
The imports are most of each of these steps' time; they run at the lowest priority, on what the server and the
notebook leave of the cores, so that they slow them little (maintainer/docs/speed.md).
"""

import ast
import contextlib
import gc
import importlib
import os
import runpy
import shlex
import signal
import sys
from pathlib import Path

# The notebook logs scikit-learn models, which MLflow saves with skops: a script that loads one (`load_model`)
# imports both, and skops lists every scikit-learn estimator as it does. Another flavor would only load slower,
# never wrong.
MODEL_LOADING_MODULES = ("mlflow.sklearn", "skops.io")


def import_what_it_imports(script: Path) -> None:
    """Run the script's top-level import statements (and only those), in a namespace of their own; and if it loads
    a model, what loading one imports."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(imports, type_ignores=[]), str(script), "exec"), {})
    if any(isinstance(node, ast.Attribute) and node.attr == "load_model" for node in ast.walk(tree)):
        for module in MODEL_LOADING_MODULES:
            importlib.import_module(module)


def lowest_priority() -> None:
    os.nice(19)
    # Linux schedules each session as a group (the tutorial starts every step in a session of its own), and weighs
    # the groups by their own niceness.
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text("19")


def main() -> None:
    # Until it has its command, Ctrl+C or a stop ends it at once, as a signal's default does: Python's own way
    # (KeyboardInterrupt, then its teardown) would wait for a core at the lowest priority, seconds on a busy machine.
    ctrl_c = signal.signal(signal.SIGINT, signal.SIG_DFL)
    lowest_priority()
    script = Path(sys.argv[1])
    import_what_it_imports(script)
    words = shlex.split(sys.stdin.read())  # python model_inferencing.py ...
    signal.signal(signal.SIGINT, ctrl_c)
    if not words:  # the tutorial had no command to give, and says why
        sys.exit(1)
    # As `python script.py ...` runs it: its arguments, its folder first on sys.path, and as __main__.
    sys.argv = words[1:]
    sys.path[0] = str(Path(sys.argv[0]).resolve().parent)
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        # Python's last garbage collection, at exit, goes through every object of these imports: 0.6 s of a
        # step's end (maintainer/docs/speed.md). Frozen, they are not collected: the exit frees them with the rest.
        gc.freeze()


if __name__ == "__main__":
    main()

"""Step 4 from a terminal: `python -m tutorial.notebook` runs ml_project.ipynb as VS Code's "Run All" does.

It prints what each cell prints, as each cell ends, and saves the notebook with its outputs as
ml_project-run.ipynb (VS Code opens it). A cell that fails stops the run with one line: its error, which for a
server that does not answer is the notebook's own pointer to `make doctor`.

`make tutorial` starts it with --imports-first while the tracking server starts: the kernel starts and the imports
run meanwhile, and the cells that use the server wait until the tutorial ends the notebook's stdin (which gives the
command the README shows, as for steps 3, 6, 7 and 9: tutorial/imports_first.py).
"""

import argparse
import signal
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

NOTEBOOK = Path("ml_project.ipynb")
EXECUTED = Path("ml_project-run.ipynb")  # in .gitignore: the lesson stays without outputs


def print_outputs(cell) -> None:
    """What the cell printed, and the value it ended with (a figure shows in EXECUTED only)."""
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            print(output.text, end="", file=sys.stderr if output.name == "stderr" else sys.stdout, flush=True)
        elif output.output_type == "execute_result":
            print(output.data.get("text/plain", ""), flush=True)


def wait_for_the_end_of_stdin() -> None:
    """Wait, and let Ctrl+C or a stop end the run meanwhile: nbclient's own handlers of both signals run on its event
    loop, which this wait holds, so for the wait they raise KeyboardInterrupt, as Python's default does."""
    signals = (signal.SIGINT, signal.SIGTERM)
    handlers = [signal.signal(signum, signal.default_int_handler) for signum in signals]
    try:
        sys.stdin.read()
    finally:
        for signum, handler in zip(signals, handlers, strict=True):
            signal.signal(signum, handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--imports-first",
        action="store_true",
        help="run the imports cell, then wait for the end of stdin (make tutorial: once the steps before have passed)",
    )
    args = parser.parse_args()
    if not NOTEBOOK.is_file():
        sys.exit(f"error: there is no {NOTEBOOK} in {Path.cwd()}: run this in the repository's folder")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    imports = next(index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code")

    def after_each_cell(cell, cell_index, **_) -> None:
        print_outputs(cell)
        if args.imports_first and cell_index == imports:  # the first code cell imports, and uses no server
            wait_for_the_end_of_stdin()

    # The kernel's warning that it runs "over TCP without encryption" is about its ports on 127.0.0.1, which other
    # users of this machine could reach; a laptop's reader is the only one. Its errors still show.
    # The kernel is stopped at once at the end: every run the notebook starts ends in its own cell (`with`), so its
    # exit hooks have nothing to do, and a graceful shutdown costs a second.
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        shutdown_kernel="immediate",
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        on_cell_executed=after_each_cell,
    )
    try:
        client.execute()
    except CellExecutionError as err:
        hint = "" if "make doctor" in err.evalue else f" (the traceback: {EXECUTED}; `make doctor` checks the setup)"
        sys.exit(f"error: {err.ename}: {err.evalue.splitlines()[0] if err.evalue else ''}{hint}")
    except (CellTimeoutError, DeadKernelError) as err:  # a cell that hangs, or a kernel that died
        sys.exit(f"error: {type(err).__name__}: {str(err).splitlines()[0]} (`make doctor` checks the setup)")
    except KeyboardInterrupt:  # Ctrl+C: nbclient has stopped the kernel
        sys.exit(130)
    finally:
        nbformat.write(notebook, EXECUTED)


if __name__ == "__main__":
    main()

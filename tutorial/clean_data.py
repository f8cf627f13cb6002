"""Delete the tutorial's tracking data, mlflow.db and mlartifacts/, after saying what it holds: `make clean-data`.

Without --yes it only counts what would go (experiments, runs, registered models, the size of the files and
step 9's flowers files) and says how to confirm, even while a server runs. It refuses to delete while a server
answers on the tutorial's port, or while any process has mlflow.db open (a server on another port), since that
server would go on writing to the files. Only the standard library is used, so it runs with any python3 from 3.9
on (the one macOS ships), after `make clean` has removed the venv too.
"""

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

from tutorial.doctor import exit_with_error, tracking_server
from tutorial.names import TRACKING_PORT

REPO = Path(__file__).resolve().parent.parent
DATABASE = REPO / "mlflow.db"
ARTIFACTS = REPO / "mlartifacts"
# Where the data goes first, in one step, before it is deleted: an interrupted deletion leaves the runs whole
# or gone, never a database without its artifacts. The next `make clean-data` finishes the job.
BEING_DELETED = REPO / ".clean-data-in-progress"


def what_it_holds(database: Path) -> str:
    """'3 experiments, 19 runs and 1 registered model', read from the database without changing it."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            counts = [
                connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # three fixed table names
                for table in ("experiments", "runs", "registered_models")
            ]
    except sqlite3.Error as err:
        return f"a database MLflow cannot read here ({err})"
    names = ("experiment", "run", "registered model")
    parts = [f"{counts[i]} {name}{'' if counts[i] == 1 else 's'}" for i, name in enumerate(names)]
    return f"{parts[0]}, {parts[1]} and {parts[2]}"


def size_of(folder: Path) -> str:
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return f"{total / 1e6:.1f} MB"


def server_answers(port: int) -> bool:
    """True if an MLflow tracking server answers on the port: the tooling's one server check."""
    return tracking_server(f"http://127.0.0.1:{port}").ok


def processes_using(database: Path) -> list[int]:
    """The ids of the processes that have `database` (or its journal) open: Linux's /proc, or lsof on macOS."""
    names = {str(database.resolve()) + suffix for suffix in ("", "-journal", "-wal", "-shm")}
    proc = Path("/proc")
    if proc.is_dir():
        pids = set()
        for fd_folder in proc.glob("[0-9]*/fd"):
            try:
                if any(os.readlink(fd) in names for fd in fd_folder.iterdir()):
                    pids.add(int(fd_folder.parent.name))
            except OSError:
                continue  # a process that ended meanwhile, or another user's that we may not read
        return sorted(pids - {os.getpid()})
    try:  # macOS has no /proc; lsof ships with it
        found = subprocess.run(["lsof", "-t", "--", *sorted(names)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted({int(pid) for pid in found.stdout.split()})


def delete_together(paths: list[Path]) -> None:
    """Move every path aside in one uninterruptible moment, then delete them: all go, or none does."""
    BEING_DELETED.mkdir(exist_ok=True)
    # Ctrl+C (or a SIGTERM) waits until every rename is done: a rename takes microseconds.
    blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        for path in paths:
            path.rename(BEING_DELETED / path.name)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
    shutil.rmtree(BEING_DELETED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yes", action="store_true", help="delete, without asking again (make clean-data CONFIRM=1)")
    parser.add_argument(
        "--port", type=int, default=TRACKING_PORT, help="the tutorial server's port (default: %(default)s)"
    )
    args = parser.parse_args()

    if BEING_DELETED.exists():
        shutil.rmtree(BEING_DELETED)  # what an interrupted `make clean-data` had confirmed and moved aside
    found = []
    # SQLite's side files, which belong to the database and go with it.
    journals = [REPO / f"{DATABASE.name}{suffix}" for suffix in ("-journal", "-wal", "-shm")]
    journals = [path for path in journals if path.exists()]
    if DATABASE.exists():
        found.append((DATABASE, f"{DATABASE.name}: {what_it_holds(DATABASE)}"))
    if ARTIFACTS.exists():
        found.append((ARTIFACTS, f"{ARTIFACTS.name}/: {size_of(ARTIFACTS)} of models and files"))
    # Step 9's flowers.csv and its outputs (git ignores flowers*), with what a failed job may have left beside them.
    for path in sorted([*REPO.glob("flowers*"), *REPO.glob(".flowers*")]):
        found.append((path, f"{path.name}{'/' if path.is_dir() else ''}: step 9's flowers or their predictions"))
    if not found:
        print("Nothing to delete: there is no mlflow.db, no mlartifacts/ and no flowers file here.")
        return

    print("The tutorial's tracking data and outputs:")
    for _, description in found:
        print(f"  {description}")
    if not args.yes:
        on_port = "" if args.port == TRACKING_PORT else f" PORT={args.port}"
        print(f"Nothing was deleted. To delete all of it, for good: make clean-data{on_port} CONFIRM=1")
        return
    if server_answers(args.port):
        exit_with_error(
            f"a tracking server answers on port {args.port}, and it may be using these files: stop it first (Ctrl+C)"
        )
    if DATABASE.exists() and (pids := processes_using(DATABASE)):
        exit_with_error(
            f"{DATABASE.name} is open in process {', '.join(map(str, pids))} (a tracking server on another port?): "
            "stop it first (Ctrl+C in its terminal)"
        )
    delete_together([path for path, _ in found] + journals)
    print("Deleted. The next `make tutorial` (or `mlflow ui`) starts with empty stores.")


if __name__ == "__main__":
    main()

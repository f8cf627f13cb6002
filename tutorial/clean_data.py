"""Delete the tutorial's tracking data, mlflow.db and mlartifacts/, after saying what it holds: `make clean-data`.

Without --yes it only counts what would go (experiments, runs, registered models and the size of
the files) and says how to confirm. It refuses while a server answers on the tutorial's port, since
that server would go on writing to the files. Only the standard library is used, so it runs with
any python3, after `make clean` has removed the venv too.
"""

import argparse
import shutil
import sqlite3
import sys
import urllib.request
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parent.parent
DATABASE = REPO / "mlflow.db"
ARTIFACTS = REPO / "mlartifacts"


def exit_with_error(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


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
    parts = [f"{count} {name}{'' if count == 1 else 's'}" for count, name in zip(counts, names, strict=True)]
    return f"{parts[0]}, {parts[1]} and {parts[2]}"


def size_of(folder: Path) -> str:
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return f"{total / 1e6:.1f} MB"


def server_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yes", action="store_true", help="delete, without asking again (make clean-data CONFIRM=1)")
    parser.add_argument("--port", type=int, default=5000, help="the tutorial server's port (default: %(default)s)")
    args = parser.parse_args()

    found = []
    if DATABASE.exists():
        found.append((DATABASE, f"{DATABASE.name}: {what_it_holds(DATABASE)}"))
    if ARTIFACTS.exists():
        found.append((ARTIFACTS, f"{ARTIFACTS.name}/: {size_of(ARTIFACTS)} of models and files"))
    if not found:
        print("Nothing to delete: there is no mlflow.db and no mlartifacts/ here.")
        return
    if server_answers(args.port):
        exit_with_error(
            f"a tracking server answers on port {args.port}, and it may be using these files: stop it first (Ctrl+C)"
        )

    print("The tutorial's tracking data:")
    for _, description in found:
        print(f"  {description}")
    if not args.yes:
        print("Nothing was deleted. To delete all of it, for good: make clean-data CONFIRM=1")
        return
    for path, _ in found:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    print("Deleted. The next `make tutorial` (or `mlflow ui`) starts with empty stores.")


if __name__ == "__main__":
    main()

"""What `make test-latest` tested: mlflow's and scikit-learn's versions, and every package newer than the lock.

It runs last, pass or fail, so that the log's last lines say which releases the suite met.
"""

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


def pins(path: Path) -> dict[str, str]:
    """name -> version of each `name==version` line whose marker holds here, by canonical name."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate():
                found[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return found


def main() -> None:
    installed, locked = pins(Path(sys.argv[1])), pins(REPO / "requirements.txt")
    print(f"Tested mlflow {installed.get('mlflow')}, scikit-learn {installed.get('scikit-learn')}")
    moved = [
        f"{name} {installed[name]} (lock {locked[name]})"
        for name in sorted(installed)
        if name in locked and installed[name] != locked[name]
    ]
    print(f"Not the lock's: {', '.join(moved) or 'none'}")


if __name__ == "__main__":
    main()

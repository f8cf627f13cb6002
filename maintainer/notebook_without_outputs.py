"""Fail if a notebook has outputs or execution counts, naming the cells: the pre-commit hook that checks notebooks.

    python -m maintainer.notebook_without_outputs ml_project.ipynb

A committed output carries a run's ids, a machine's paths and pictures into every clone. In VS Code,
"Clear All Outputs" (the notebook toolbar's "..." menu) before you commit.
"""

import json
import sys


def cells_with_outputs(path: str) -> list[int]:
    cells = json.load(open(path, encoding="utf-8"))["cells"]
    return [
        index
        for index, cell in enumerate(cells)
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]


def main() -> None:
    dirty = {path: cells for path in sys.argv[1:] if (cells := cells_with_outputs(path))}
    for path, cells in dirty.items():
        print(f"{path}: code cells {cells} have outputs: clear them (VS Code: Clear All Outputs) and commit again")
    sys.exit(1 if dirty else 0)


if __name__ == "__main__":
    main()

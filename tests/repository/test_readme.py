"""README.md is the guide: its step headings follow the list of steps, it shows every command the tests run (as do
the docs/ pages), and it links every reader's page, while the maintainer's pages hang off CONTRIBUTING.md."""

import re

import guide_commands
import nbformat
import pytest
from helpers import REPO, git

from tutorial.steps import COMPARE_RUNS, ML_PROJECT, MODEL_REGISTRY, STEPS

README = (REPO / "README.md").read_text()
CONTRIBUTING = (REPO / "CONTRIBUTING.md").read_text()


def shell_text(page: str) -> str:
    """A page's text with long shell commands joined again: the docs break them with a trailing backslash."""
    return re.sub(r"\s*\\\n\s*", " ", (REPO / page).read_text())


@pytest.mark.parametrize(
    "command", [value for name, value in vars(guide_commands).items() if name.isupper() and isinstance(value, str)]
)
def test_the_docs_show_the_tested_command(command):
    """Each command the tests run appears as it is on its page; a <placeholder> matches the page's real example."""
    page = guide_commands.SHOWN_IN.get(command, "README.md")
    pattern = r"\S+".join(re.escape(part) for part in re.split(r"<[a-z-]+>", command))
    assert re.search(pattern, shell_text(page)), f"{page} does not show: {command}"


def test_readme_headings_follow_the_list_of_steps():
    headings = re.findall(r"^### (\d+)\. (.+)$", README, re.MULTILINE)
    assert headings == [(str(step.number), step.title) for step in STEPS]


def test_readme_shows_each_steps_command():
    for step in STEPS:
        section = README.split(f"### {step.number}. {step.title}\n")[1].split("\n### ")[0]
        for command in filter(None, [step.before, step.command]):
            pattern = r"\S+".join(re.escape(part) for part in re.split(r"<[a-z-]+>", command))
            assert re.search(pattern, section), f"step {step.number} does not show {command}"


def test_every_page_in_docs_is_linked_from_the_readme():
    """docs/ holds what a reader of the guide uses; the maintainer's pages are in maintainer/docs/."""
    pages = sorted(path.relative_to(REPO).as_posix() for path in (REPO / "docs").glob("*.md"))
    assert pages, "docs/ has no pages"
    for page in pages:
        assert f"]({page}" in README, f"README.md does not link {page}"


def test_the_maintainers_pages_hang_off_contributing_which_the_readme_links():
    pages = sorted(path.relative_to(REPO).as_posix() for path in (REPO / "maintainer/docs").glob("*.md"))
    assert pages, "maintainer/docs/ has no pages"
    for page in pages:
        assert f"]({page}" in CONTRIBUTING, f"CONTRIBUTING.md does not link {page}"
    assert "](CONTRIBUTING.md)" in README


def test_every_relative_link_in_the_markdown_leads_to_a_file():
    """Pages moved between docs/ and maintainer/docs/ link each other by relative paths; none may lead nowhere."""
    pages = [REPO / name for name in git("ls-files", "*.md").stdout.split()]
    assert len(pages) >= 6, pages
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:|#", target):
                continue  # a web address, or a heading of the same page
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(REPO)} links {target}, which does not exist"


def test_readme_is_the_guide_not_the_manual():
    """A newcomer finishes it in one sitting; reference material goes to docs/."""
    assert len(README.splitlines()) <= 330, "move reference material to a page in docs/"
    assert len(README.split()) <= 2500, "move reference material to a page in docs/"


def test_the_notebooks_sections_carry_the_guides_step_numbers_and_titles():
    """A reader who reads step 5 or 7 in the README finds the notebook's section of the same number and title."""
    notebook = nbformat.reads((REPO / "ml_project.ipynb").read_text(), as_version=4)
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    sections = re.findall(r"^## Step (\d+)\. (.+)$", markdown, re.MULTILINE)
    assert [int(number) for number, _ in sections] == [ML_PROJECT.number, COMPARE_RUNS.number, MODEL_REGISTRY.number]
    assert all(STEPS[int(number) - 1].title == title for number, title in sections), sections


def test_the_readme_states_the_registrys_numbers_that_the_path_tests_check():
    """expected_state.assert_registry checks these numbers after one run of the notebook (the steps alone) and after
    two (`make tutorial`, then the steps), in tooling/test_make_tutorial.py; the README must say the same."""
    registry = README.split(f"### {MODEL_REGISTRY.number}. ")[1]
    assert "**The first run** registers versions 1 and 2 (runs 1 and 2) and version 3 (`lr-C-1.5`" in registry
    assert "holds `@champion`" in registry
    assert "**Each later run** adds 2 versions" in registry and "`@champion` stays on version 3" in registry
    assert "`make tutorial` runs it once too" in registry


@pytest.mark.parametrize(
    "model_path",
    [
        r"mlflow-artifacts:/\d+/models/m-[0-9a-f]{32}/artifacts/MLmodel",
        r"mlartifacts/\d+/models/m-[0-9a-f]{32}/artifacts",
    ],
)
def test_readme_shows_a_model_path_command(model_path):
    assert re.search(r"python model_inferencing\.py " + model_path, README)


def test_readme_opens_with_the_two_commands():
    quickstart = README.split("\n## ")[1]
    assert guide_commands.TUTORIAL in quickstart and guide_commands.TEST in quickstart


def test_every_image_the_readme_shows_exists():
    for image in re.findall(r"\]\((images/[^)\s]+)\)|src=\"(images/[^\"]+)\"", README):
        path = next(part for part in image if part)
        assert (REPO / path).is_file(), path

"""The guide's steps, in order: the one list that everything else follows.

README.md has a heading `### N. <title>` for each step, N counted from this list, and shows
the step's command. `make tutorial` runs the steps it can, `make screenshots` and `make bench`
run them as it does, and the tests check that the README's headings follow this list.
To add a step: add it here, write its README section, and test it.
"""

import itertools
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    title: str  # the README heading, without its number
    command: str | None  # as the README shows it; <model-folder> stands for a path the reader copies; None: in the UI
    # None if `make tutorial` runs the step; otherwise what the tutorial tells the reader about it
    not_run_because: str | None = None
    before: str | None = None  # a command the README shows first, which makes what the step's command needs
    # The steps whose results the command uses: `make tutorial` starts it once they have passed, beside any other
    # step that is ready too. `before` needs nothing.
    needs: tuple["Step", ...] = ()

    @property
    def number(self) -> int:
        return STEPS.index(self) + 1

    def label(self) -> str:
        """How the tutorial runner announces the step: "[3/8] Smoke test: ...", with the guide's own number."""
        return f"[{self.number}/{len(STEPS)}] {self.title}"


def fill_in(command: str, **values: str) -> str:
    """The command with its <placeholders> replaced: model_folder="mlartifacts/..." fills <model-folder>."""
    for name, value in values.items():
        placeholder = f"<{name.replace('_', '-')}>"
        if placeholder not in command:
            raise ValueError(f"{command!r} has no {placeholder}")
        command = command.replace(placeholder, value)
    return command


def settings_and_words(command: str) -> tuple[dict[str, str], list[str]]:
    """A command as bash runs it: the NAME=value settings before it, and its words."""
    words = shlex.split(command)
    settings = dict(word.split("=", 1) for word in itertools.takewhile(lambda word: "=" in word, words))
    return settings, words[len(settings) :]


ENVIRONMENT = Step(
    "Create the environment",
    "pip install -r requirements.txt",
    not_run_because="make has built .venv from requirements.txt",
)
# MLflow's job runner serves its GenAI features (scorers, judges), which no step of the guide uses. Off, the server
# starts fewer processes and answers the first step sooner (maintainer/docs/speed.md).
TRACKING_SERVER = Step("Start the tracking server", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --workers 1")
SMOKE_TEST = Step("Smoke test: log one param and one metric", "python get_started.py", needs=(TRACKING_SERVER,))
# After the smoke test too, so that the experiments get the ids the README shows.
ML_PROJECT = Step(
    "An ML project: train, log and register iris models",
    "python -m tutorial.notebook",
    needs=(TRACKING_SERVER, SMOKE_TEST),
)
COMPARE_RUNS = Step(
    "Compare the runs", None, not_run_because="done in the UI; the notebook printed the same table with search_runs"
)
INFERENCE_FROM_FILES = Step(
    "Inference from the model's files", "python model_inferencing.py <model-folder>", needs=(ML_PROJECT,)
)
MODEL_REGISTRY = Step(
    "The Model Registry: versions, tags and the `champion` alias",
    "python model_inferencing.py models:/tracking-iris-lr@champion",
    needs=(ML_PROJECT,),
)
SERVING = Step(
    "Serve the model over REST",
    "mlflow models serve -m models:/tracking-iris-lr@champion -p 5001 --env-manager local",
    not_run_because="it runs until you stop it: `make serve` in another terminal, once the tutorial is done",
    needs=(ML_PROJECT,),
)
BATCH_SCORING = Step(
    "Score a dataset in batch",
    "python batch_scoring.py flowers.csv",
    before=(
        """python -c "from sklearn.datasets import load_iris; """
        """load_iris(as_frame=True).data.to_csv('flowers.csv', index=False)\""""
    ),
    needs=(ML_PROJECT,),
)

# Step 9's job on Spark (`make batch-spark` runs it; docs/batch-scoring-on-spark.md shows it).
SCORE_ON_SPARK = "python batch_scoring_spark.py flowers.csv"

STEPS = (
    ENVIRONMENT,
    TRACKING_SERVER,
    SMOKE_TEST,
    ML_PROJECT,
    COMPARE_RUNS,
    INFERENCE_FROM_FILES,
    MODEL_REGISTRY,
    SERVING,
    BATCH_SCORING,
)

"""Batch scoring: `python batch_scoring.py flowers.csv` predicts a file with the champion and records which model."""

import argparse
import os
import re
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once if no server answers


def pin(model_uri: str) -> tuple[str, str | None]:
    """models:/name@alias -> models:/name/version, the version that scores; a folder or models:/m-<id> stays as is."""
    name, alias, version = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))|.*", model_uri).groups()
    if alias:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
    return (f"models:/{name}/{version}" if version else model_uri), version


def check_columns(table: pd.DataFrame, schema, source) -> list[str]:
    """The signature names the model's features. MLflow finds them in the table by name, in any order, and refuses a
    missing column or a column that is not numbers (one row tells: a column has one type); others (an id) stay out."""
    try:
        mlflow.models.validate_schema(table.head(1), schema)
    except MlflowException as err:  # the table's to fix, not the server's
        raise ValueError(f"{source}: {err.message}") from None
    if empty := [name for name in schema.input_names() if table[name].isna().any()]:
        raise ValueError(f"column {empty[0]!r} has empty values in {source}")
    return schema.input_names()


def score(model_uri: str, source: Path) -> Path:
    table = pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source)
    model_uri, version = pin(model_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    inputs = check_columns(table, model.metadata.get_input_schema(), source)
    output = source.with_name(f"{source.stem}-predictions.parquet")
    partial = output.with_name(f".{output.name}.partial")  # renamed once whole: no half-written output
    table.assign(prediction=model.predict(table[inputs])).to_parquet(partial, index=False)
    partial.replace(output)
    dataset = mlflow.data.from_numpy(table[inputs].to_numpy(), name=source.name)  # same rows again, same digest
    record(dataset, model_uri, version, model.metadata.model_id, len(table), output)
    return output


def record(dataset, model_uri: str, version: str | None, model_id: str, rows: int, output) -> None:
    """A run in "Batch scoring": which data, which version and model scored it, how many rows, and where they went."""
    experiment = mlflow.set_experiment("Batch scoring")
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"score-{dataset.name}"):
        mlflow.log_input(dataset, context="scoring")
        tags = {"model_uri": model_uri, "model_version": version or "-", "model_id": model_id}
        mlflow.set_tags({**tags, "output": str(Path(output).resolve())})  # one request for the four
        mlflow.log_metric("rows", rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="a CSV or Parquet file with a column for each of the model's inputs")
    parser.add_argument("--model", default="models:/tracking-iris-lr@champion", help="default: %(default)s")
    args = parser.parse_args()
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    try:
        print(f"Scored {args.input} with {args.model}: {score(args.model, args.input)}")
    except (OSError, ValueError) as err:  # the file or its columns
        raise SystemExit(f"error: {err} (in {Path.cwd()})") from None
    except MlflowException as err:  # the server, the registry or the model
        raise SystemExit(f"error: {str(err).splitlines()[0]} (no server or no notebook run? `make doctor`)") from None

"""Batch scoring on Spark: batch_scoring.py's job and run, with its functions, for a table that outgrows one machine.

python batch_scoring_spark.py flowers.csv     # in this process, every core: writes flowers-predictions-spark/
spark-submit --master spark://<host>:7077 batch_scoring_spark.py <shared-path>   # on a cluster (Java 17+ on both)
"""

import argparse
import os
import shutil
import sys

import mlflow
from mlflow.exceptions import MlflowException
from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from batch_scoring import check_columns, pin, record

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's workers run this Python, which has MLflow


def score_on_spark(spark: SparkSession, model_uri: str, source: str, output: str) -> int:
    reader = spark.read.option("header", True).option("inferSchema", True)
    table = reader.parquet(source) if source.endswith(".parquet") else reader.csv(source)
    model_uri, version = pin(model_uri)  # the alias resolved once, on the driver: every executor scores that version
    model = mlflow.models.get_model_info(model_uri)
    # Before any work, batch_scoring.py's checks on the first row, then Spark counts the empty values of the rest.
    inputs = check_columns(table.limit(1).toPandas(), model.signature.inputs, source)
    rows, *empty = table.select(F.count("*"), *[F.count_if(F.col(f"`{name}`").isNull()) for name in inputs]).first()
    if empty := [name for name, count in zip(inputs, empty, strict=True) if count]:
        raise ValueError(f"column {empty[0]!r} has empty values in {source}")
    # spark_udf ships the model to every executor, which runs it with its own Python's packages (env_manager="local").
    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="long", env_manager="local")
    # predict() with no columns reads the signature's by name; the table's other columns stay beside the prediction.
    scored = table.withColumn("prediction", predict())
    partial, previous = f"{output}.partial", f"{output}.previous"  # Spark's overwrite would delete the output first
    try:
        scored.write.parquet(partial, mode="overwrite")  # the partial folder only: a killed job's, if any
        if os.path.exists(output):
            os.rename(output, previous)  # two renames, each instant: the output is whole, the old one or the new
        os.rename(partial, output)
    finally:  # nothing is left beside it: neither a failed job's folder nor the output it replaced
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)
    # The input: where it was read, Spark's hash of how, and the model's schema (from_spark would count the rows again).
    name, where = os.path.basename(source.rstrip("/")), mlflow.data.spark_dataset_source.SparkDatasetSource(path=source)
    dataset = mlflow.data.meta_dataset.MetaDataset(where, name, str(table.semanticHash()), model.signature.inputs)
    record(dataset, model_uri, version, model.model_id, rows, output)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a CSV or Parquet file (or folder) with a column for each of the model's inputs")
    parser.add_argument("--model", default="models:/tracking-iris-lr@champion", help="default: %(default)s")
    args = parser.parse_args()
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    output = f"{os.path.splitext(args.input.rstrip('/'))[0]}-predictions-spark"  # beside the input
    try:
        spark = SparkSession.builder.appName("batch-scoring").getOrCreate()
        rows = score_on_spark(spark, args.model, args.input, output)
        spark.stop()
    except (AnalysisException, OSError, ValueError) as err:  # the file or its columns (a missing file: PATH_NOT_FOUND)
        raise SystemExit(f"error: {str(err).splitlines()[0]} (in {os.getcwd()})") from None
    except (MlflowException, PySparkException, Py4JJavaError) as err:  # the server, the registry, Java or a worker
        reason = (str(getattr(err, "java_exception", err)).strip() or type(err).__name__).splitlines()[0]  # Spark's own
        raise SystemExit(f"error: {reason} (`make doctor` checks Java, the server and the champion)") from None
    print(f"Scored {rows} rows of {args.input} with {args.model} on Spark: {output}/")

"""Batch scoring on Spark: the job of batch_scoring.py, for a table that outgrows one machine.

    python batch_scoring_spark.py flowers.csv                        # Spark in this process, on every core
    spark-submit --master spark://<host>:7077 batch_scoring_spark.py <file or s3a://... path>   # on a cluster

It writes the rows with a `prediction` column to <input>-predictions-spark/, a folder of Parquet files.
Needs pyspark (`make batch-spark` installs it) and Java 17 or newer.
"""

import argparse
import os
import sys

import mlflow
from mlflow.exceptions import MlflowException
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once if no server answers
# Spark's Python workers run this interpreter, which has MLflow and the model's packages.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def score_on_spark(spark: SparkSession, model_uri: str, source: str, output: str) -> int:
    reader = spark.read.option("header", True).option("inferSchema", True)
    table = reader.parquet(source) if source.endswith(".parquet") else reader.csv(source)
    if missing := [column for column in FEATURES if column not in table.columns]:
        raise ValueError(f"{source} has no column {missing[0]!r}: it needs {FEATURES}")
    # spark_udf ships the model to every executor. env_manager="local": they use their own Python's packages;
    # "virtualenv" or "uv" would build the model's environment from its requirements.txt on each of them.
    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="long", env_manager="local")
    # The model takes each flower as one array of 4 numbers (its signature: a tensor of shape (-1, 4)).
    scored = table.withColumn("prediction", predict(F.array(*FEATURES)))
    scored.write.mode("overwrite").parquet(output)  # Spark's commit: a failed job leaves no _SUCCESS file
    return spark.read.parquet(output).count()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a CSV or Parquet file (or folder) with the columns " + ", ".join(FEATURES))
    parser.add_argument("--model", default="models:/tracking-iris-lr@champion", help="default: %(default)s")
    args = parser.parse_args()
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    output = f"{args.input.removesuffix('/').rsplit('.', 1)[0]}-predictions-spark"
    try:
        # The master comes from spark-submit (--master); run with plain python, it is local[*].
        spark = SparkSession.builder.appName("batch-scoring").getOrCreate()
        rows = score_on_spark(spark, args.model, args.input, output)
        spark.stop()
    except (MlflowException, PySparkException, OSError, ValueError) as err:
        reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise SystemExit(f"error: {reason} (`make doctor` checks Java and the server)") from None
    print(f"Scored {rows} rows of {args.input} with {args.model} on Spark: {output}/")

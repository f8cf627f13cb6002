"""Score flowers.csv with the champion on Spark, in local[*]: what `make batch-spark` runs.

It checks first what would otherwise fail slowly or with a Java stack trace (Java 17 or newer, and the
tracking server, as `make doctor` does), writes flowers.csv as step 9 of the guide does if it is not there,
then runs the guide's `python batch_scoring_spark.py flowers.csv`.
"""

import argparse
import os
import shlex
import subprocess
import sys

from tutorial import doctor
from tutorial.names import TRACKING_PORT
from tutorial.steps import BATCH_SCORING, SCORE_ON_SPARK
from tutorial.venv import with_venv_on_path

REPO = doctor.REPO
# A job this short spends more CPU in the JVM's optimizing compiler than in Spark's work: the quick compiler alone and
# the serial collector cut the CPU of `make batch-spark` by about a quarter (maintainer/docs/speed.md). Spark's
# launcher reads SPARK_SUBMIT_OPTS; one set in the shell wins.
QUICK_JVM_START = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=TRACKING_PORT, help="the tracking server's (default %(default)s)")
    args = parser.parse_args()
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"http://127.0.0.1:{args.port}"

    # Before Spark starts: Java, the server, and the champion that the job scores (the notebook, step 4, makes it).
    doctor.require(doctor.java(os.environ), doctor.tracking_server(tracking_uri), doctor.registry(tracking_uri, REPO))
    # The steps find `python` in this venv, as in a terminal where it is active; Spark's workers run it too.
    # SPARK_LOCAL_IP: local[*] needs no network, so Spark listens on loopback only.
    env = with_venv_on_path(
        {
            "SPARK_SUBMIT_OPTS": QUICK_JVM_START,
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
    )
    for command in ([BATCH_SCORING.before] if not (REPO / "flowers.csv").exists() else []) + [SCORE_ON_SPARK]:
        print(f"$ {command}", flush=True)
        result = subprocess.run(shlex.split(command), cwd=REPO, env=env)
        if result.returncode != 0:
            sys.exit(result.returncode)


if __name__ == "__main__":
    main()

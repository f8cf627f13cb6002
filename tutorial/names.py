"""The names and ports that the guide's tooling and tests share, typed out once.

The teaching files (get_started.py, ml_project.ipynb, model_inferencing.py, batch_scoring.py) keep their own literals in
plain sight, because each one stands alone; the tests check that they match these.
"""

SMOKE_TEST_EXPERIMENT = "my_experiment"  # get_started.py's experiment
IRIS_EXPERIMENT = "Iris Classification Experiment"  # the notebook's experiment
BATCH_EXPERIMENT = "Batch scoring"  # batch_scoring.py's (and batch_scoring_spark.py's, through it)
MODEL_NAME = "tracking-iris-lr"  # the notebook registers its models under this name
CHAMPION_URI = f"models:/{MODEL_NAME}@champion"  # the alias the notebook's gate moves
# The model's inputs, by name: the columns of load_iris(as_frame=True), which the notebook trains on.
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]

TRACKING_PORT = 5000  # `mlflow ui`'s default
SERVING_PORT = TRACKING_PORT + 1  # `make serve` uses the port after the tracking server's (the Makefile's SERVE_PORT)

"""The guide's commands, exactly as README.md shows them.

The tests run these strings, and test_repository.py checks that README.md shows each one,
so the README and the tests cannot drift apart.
"""

TUTORIAL = "make tutorial"
TEST = "make test"
SMOKE_TEST = "python get_started.py"
RUN_NOTEBOOK = "jupyter execute ml_project.ipynb"
# The README shows real ones: the path the UI shows, mlflow-artifacts:/<exp id>/models/m-<id>/artifacts/MLmodel,
# and the same folder on disk, mlartifacts/<exp id>/models/m-<id>/artifacts.
INFER_FROM_UI_PATH = "python model_inferencing.py {ui_path}"
INFER_FROM_FOLDER = "python model_inferencing.py {model_folder}"
INFER_BY_ALIAS = "python model_inferencing.py models:/tracking-iris-lr@champion"
INFER_BY_VERSION = "python model_inferencing.py models:/tracking-iris-lr/2"

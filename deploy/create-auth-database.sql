-- Users and permissions of the basic-auth app live in their own database (see basic_auth.ini).
CREATE DATABASE mlflow_auth OWNER mlflow;

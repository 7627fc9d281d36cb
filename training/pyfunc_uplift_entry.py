"""MLflow models-from-code entry of the next-best-action uplift bundle."""

from mlflow.models import set_model

from training.nba import UpliftPyfunc

set_model(UpliftPyfunc())

"""MLflow models-from-code entry: logged by path so no pickled object travels with the model."""

from mlflow.models import set_model

from training.tracking import ScorerModel

set_model(ScorerModel())

"""MLflow models-from-code entry of the value model."""

from mlflow.models import set_model

from training.value_model import ValuePyfunc

set_model(ValuePyfunc())

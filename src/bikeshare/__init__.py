"""Bikeshare demand forecasting: the model, its SageMaker serving runtime and its release engine."""

__version__ = "0.1.0"

"""The SageMaker serving runtime: MLflow's scoring server behind a strict request gate."""

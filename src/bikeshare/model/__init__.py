"""The demand model: its features, its training data, training and SageMaker packaging."""

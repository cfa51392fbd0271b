"""Featuriser of the fraud pipeline (``fraud_preprocess``)."""

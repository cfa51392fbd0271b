"""Postprocess step of the fraud pipeline (``fraud_postprocess``)."""

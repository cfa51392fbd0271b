"""Serving side: the embedded ``tritonserver`` runtime and the Python-based backends it loads."""

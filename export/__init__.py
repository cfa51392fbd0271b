"""Export side: synthetic data, training, and the writer of the Triton model repository."""

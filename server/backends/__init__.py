"""Python-based backends: each folder is copied into the backend directory tritonserver loads."""

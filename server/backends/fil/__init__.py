"""Python-based FIL backend (``backend: "fil"``)."""

"""Python-backend model sources that exporters copy into the model repository."""

"""baocao: periodic government reporting cycles run end to end by Prefect flows."""

__version__ = "0.1.0"

"""The zones stage (see ``stage.py``)."""

"""The detect stage (see ``stage.py``)."""

"""The track stage (see ``stage.py``)."""

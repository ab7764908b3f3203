"""The counting stage: people and vehicles in and out of zones and across lines, per
minute (see ``stage.py`` and ``counter.py``)."""

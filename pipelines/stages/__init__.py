"""The declared stage graph: every stream stage, in data-flow order.

Adding a stage is one folder here (``<name>/stage.py`` with a :class:`~pipelines.stage.Stage`
subclass) and one line in :data:`STAGES`; see docs/adding-a-stage.md. ``argus graph``
draws this list; ``argus worker --stages a,b`` runs a subset of it.
"""

from __future__ import annotations

from typing import Any

from pipelines.stage import Stage
from pipelines.stages.anomaly.stage import Anomaly, AnomalyObjects
from pipelines.stages.behaviour.stage import Behaviour
from pipelines.stages.correlate.stage import Correlate
from pipelines.stages.counting.stage import Counting
from pipelines.stages.detect.stage import Detect
from pipelines.stages.faces.stage import Faces
from pipelines.stages.plates.stage import Plates
from pipelines.stages.track.stage import Track
from pipelines.stages.zones.stage import Zones

STAGES: tuple[type[Stage[Any, Any]], ...] = (
    Detect,
    Zones,
    Track,
    Behaviour,
    Counting,
    Faces,
    Plates,
    Anomaly,
    AnomalyObjects,
    Correlate,
)


def stage_classes(names: list[str] | None = None) -> list[type[Stage[Any, Any]]]:
    """The stage classes called ``names`` (all when None), in graph order; an unknown name
    is an error listing the known ones.

    >>> [s.name for s in stage_classes(["track", "detect"])]
    ['detect', 'track']
    """
    if names is None:
        return list(STAGES)
    known = {cls.name: cls for cls in STAGES}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; the stages are "
                         f"{', '.join(known)}")
    return [cls for cls in STAGES if cls.name in names]

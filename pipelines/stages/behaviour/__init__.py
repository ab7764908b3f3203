"""Rule-based behaviours on tracks: the ``behaviour`` stage (``tracks`` → ``events.video``).

One module per behaviour, each a small class with per-track state in plain dataclasses:

=====================  ===============================  ==========================
module                 event kind                       configured on
=====================  ===============================  ==========================
``lines``              ``line_crossing`` (direction)    a camera's ``lines``
``loitering``          ``loitering``                    a zone's ``behaviours``
``running``            ``running``                      a zone's ``behaviours``
``crowd``              ``crowd``                        a zone's ``behaviours``
``wrong_way``          ``wrong_way``                    a zone's ``behaviours``
``abandoned``          ``abandoned_object``             a zone's ``behaviours``
``vehicle``            ``vehicle_stopped``              a zone's ``behaviours``
=====================  ===============================  ==========================

``engine`` runs them per camera and persists their state; ``schedule`` gates events by
site-local time; ``base`` has the frame view, geometry in box heights and event ids.
Configuration: :mod:`argus.behaviours`; documentation: docs/behaviours.md.
"""

from pipelines.stages.behaviour.engine import BehaviourRegistry, BehaviourResult, CameraBehaviours

__all__ = ["BehaviourRegistry", "BehaviourResult", "CameraBehaviours"]

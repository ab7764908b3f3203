"""Message contracts: one versioned pydantic model per topic.

``TOPIC_MODELS`` maps each logical topic to its model; ``python -m schemas.generate``
writes the JSON Schema files in ``schemas/json/`` for non-Python consumers.
"""

from schemas.alerts import Alert, AlertState, Evidence, Severity
from schemas.base import Message
from schemas.commands import Command, CommandType
from schemas.counts import Counts, GroupCounts
from schemas.detections import Box, Detection, Detections
from schemas.dlq import DeadLetter
from schemas.events import VideoEvent
from schemas.faces import FaceEvent
from schemas.frames import FrameHeaders
from schemas.plates import PlateEvent, PlateHit
from schemas.sensors import SensorEvent, SensorReading, SensorType
from schemas.tracks import Track, Tracks, Velocity

TOPIC_MODELS: dict[str, type[Message]] = {
    "frames.raw": FrameHeaders,
    "detections": Detections,
    "tracks": Tracks,
    "events.video": VideoEvent,
    "counts": Counts,
    "events.face": FaceEvent,
    "events.plate": PlateEvent,
    "sensors.events": SensorEvent,
    "alerts": Alert,
    "commands": Command,
    "dlq": DeadLetter,
}

__all__ = [
    "TOPIC_MODELS",
    "Alert",
    "AlertState",
    "Box",
    "Command",
    "CommandType",
    "Counts",
    "DeadLetter",
    "Detection",
    "Detections",
    "Evidence",
    "FaceEvent",
    "FrameHeaders",
    "GroupCounts",
    "Message",
    "PlateEvent",
    "PlateHit",
    "SensorEvent",
    "SensorReading",
    "SensorType",
    "Severity",
    "Track",
    "Tracks",
    "Velocity",
    "VideoEvent",
]

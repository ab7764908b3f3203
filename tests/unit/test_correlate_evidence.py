"""The alert evidence the correlate stage builds from an event: video evidence carries the
detection box and the camera zone (drawn over the snapshot by the console)."""

from __future__ import annotations

import pytest

from pipelines.stages.correlate.rules.events import compact, evidence_of
from schemas.alerts import Evidence
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.sensors import SensorEvent

BOX = Box(x1=0.1, y1=0.2, x2=0.5, y2=0.9)
VIDEO = VideoEvent(event_id="v1", kind="zone_intrusion", camera_id="cam-1", site_id="s",
                   zone_id="gate-area", site_zone_id="gate", ts=10.0, seq=7,
                   class_name="person", score=0.9, box=BOX, count=1, snapshot_ref="cam-1/7")
SENSOR = SensorEvent(event_id="p1", sensor_id="pir", site_id="s", zone_id="gate",
                     type="intrusion", ts=10.0)


@pytest.mark.parametrize(("event", "box", "zone"), [
    (VIDEO, BOX, "gate-area"),
    (SENSOR, None, None),
])
def test_evidence_carries_box_and_camera_zone(event: VideoEvent | SensorEvent, box: Box | None,
                                              zone: str | None) -> None:
    item = Evidence.model_validate(evidence_of(compact(event)))
    assert (item.box, item.zone_id) == (box, zone)


def test_state_kept_before_boxes_still_gives_evidence() -> None:
    old = {k: v for k, v in compact(VIDEO).items() if k != "box"}
    item = Evidence.model_validate(evidence_of(old))
    assert (item.box, item.zone_id, item.snapshot_ref) == (None, "gate-area", "cam-1/7")

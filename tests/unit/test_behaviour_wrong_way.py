"""Wrong way on synthetic tracks: the corridor's allowed direction is left to right
(``[1, 0]``); against it means more than 120 degrees away, at 0.3 box heights/s or more,
for 3 frames."""

from __future__ import annotations

import pytest

from pipelines.stages.behaviour.wrong_way import angle_deg
from tests.unit.test_behaviour_support import Script, camera, obj, run

CAM = """    zones:
      - id: corridor
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        behaviours:
          wrong_way: {direction: [1, 0], frames: 3}
"""


def heading(dx: float, dy: float, frames: int = 10, speed: float = 0.8, **kw: object
            ) -> Script:
    return [[obj(1, 0.5, 0.8, speed=speed, heading=(dx, dy), **kw)]  # type: ignore[arg-type]
            for _ in range(frames)]


@pytest.mark.parametrize(
    ("script", "fired_at", "angle"),
    [
        pytest.param(heading(1, 0), [], None, id="the allowed way"),
        pytest.param(heading(-1, 0), [2], 180.0, id="against it"),
        pytest.param(heading(-1, -0.5), [2], 153.4, id="against it, diagonally"),
        pytest.param(heading(0, -1), [], None, id="across: 90 degrees"),
        pytest.param(heading(-1, -1.5), [2], 123.7, id="123.7 degrees away"),
        pytest.param(heading(-1, -2), [], None, id="116.6 degrees away"),
        pytest.param(heading(-1, 0, speed=0.2), [], None, id="too slow: standing jitter"),
        pytest.param(heading(-1, 0, frames=2), [], None, id="2 frames only"),
        pytest.param(heading(-1, 0) + heading(1, 0, frames=3) + heading(-1, 0), [2, 15],
                     180.0, id="turns back: a second occurrence"),
        pytest.param(heading(-1, 0, state="lost"), [], None, id="lost"),
    ],
)
def test_wrong_way(script: Script, fired_at: list[int], angle: float | None) -> None:
    cam, site = camera(CAM)
    events = run(cam, site, script)
    assert [i for i, _ in events] == fired_at
    for _, event in events:
        assert (event.kind, event.zone_id, event.track_ids) == ("wrong_way", "corridor", [1])
        assert event.attributes["angle_deg"] == pytest.approx(angle, abs=0.1)


@pytest.mark.parametrize(
    ("a", "b", "degrees"),
    [((1, 0), (1, 0), 0.0), ((1, 0), (0, 1), 90.0), ((1, 0), (-1, 0), 180.0),
     ((1, 0), (-1, 1), 135.0)],
)
def test_angle(a: tuple[float, float], b: tuple[float, float], degrees: float) -> None:
    assert angle_deg(a, b) == pytest.approx(degrees)


def test_direction_is_compared_in_pixels() -> None:
    """The direction [1, 1] is the image diagonal: 29.4 degrees below the horizontal on a
    640x360 screen. A track heading 80.6 degrees above the horizontal (on screen) is 110
    degrees away from it, not against it (in normalised units it would be 129.7)."""
    cam, site = camera(CAM.replace("[1, 0]", "[1, 1]"))
    assert [i for i, _ in run(cam, site, heading(-640, -360))] == [2]  # opposite on screen
    assert run(cam, site, heading(0.1626, -0.9867)) == []

"""Running on synthetic tracks: speed 1.8 box heights/s for 5 frames, near (box 60 % of
the image tall) and far (10 %) people, so the same threshold holds at both distances."""

from __future__ import annotations

import pytest

from tests.unit.test_behaviour_support import FPS, Script, camera, obj, run

CAM = """    zones:
      - id: street
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        behaviours:
          running: {speed: 1.8, frames: 5}
"""
NEAR, FAR = 0.6, 0.1


def pace(speeds: list[float], h: float, tid: int = 1, **kw: object) -> Script:
    """One track moving right at ``speeds[i]`` box heights per second in frame i."""
    out, x = [], 0.2
    for s in speeds:
        out.append([obj(tid, x, 0.9, h, speed=s, **kw)])  # type: ignore[arg-type]
        x = min(x + s * h * 360 / 640 / FPS, 0.9)
    return out


@pytest.mark.parametrize(
    ("script", "fired_at"),
    [
        pytest.param(pace([0.8] * 20, NEAR), [], id="near walker"),
        pytest.param(pace([3.0] * 20, NEAR), [4], id="near runner"),
        pytest.param(pace([0.8] * 20, FAR), [], id="far walker"),
        pytest.param(pace([3.0] * 20, FAR), [4], id="far runner"),
        pytest.param(pace([3.0] * 4 + [0.8] * 10, NEAR), [], id="4 fast frames"),
        pytest.param(pace([3.0] * 3 + [1.0] + [3.0] * 3, NEAR), [], id="not consecutive"),
        pytest.param(pace([3.0] * 6 + [1.0] + [3.0] * 6, NEAR), [4],
                     id="a dip after it fired: the same run"),
        pytest.param(pace([3.0] * 6 + [1.0] * 5 + [3.0] * 6, NEAR), [4, 15],
                     id="walks 5 frames between runs: two runs"),
        pytest.param(pace([3.0] * 20, 0.02), [], id="box too small"),
        pytest.param([[obj(1, 0.2 + 0.02 * i, 1.0, NEAR, speed=3.0)] for i in range(20)], [],
                     id="box cut by the image border"),
        pytest.param(pace([3.0] * 20, NEAR, state="lost"), [], id="lost: predicted only"),
        pytest.param(pace([1.7] * 20, NEAR), [], id="just under the threshold"),
        pytest.param(pace([1.9] * 20, FAR), [4], id="just over it"),
        pytest.param(pace([3.0] * 20, NEAR, cls="car"), [], id="a fast car is not running"),
    ],
)
def test_running(script: Script, fired_at: list[int]) -> None:
    cam, site = camera(CAM)
    events = run(cam, site, script)
    assert [i for i, _ in events] == fired_at
    for i, event in events:
        assert event.kind == "running" and event.track_ids == [1]
        assert event.start_ts is not None and event.end_ts is not None
        assert event.end_ts - event.start_ts == pytest.approx(4 / FPS)
        assert event.seq == i
        assert float(event.attributes["speed"]) > 1.8


def test_speed_is_in_box_heights_not_image_units() -> None:
    """A far runner moves fewer pixels than a near walker and still is the one running."""
    near_walker = pace([0.8] * 10, NEAR, tid=1)
    far_runner = pace([3.0] * 10, FAR, tid=2)
    assert abs(near_walker[0][0].velocity.vx) > abs(far_runner[0][0].velocity.vx)
    cam, site = camera(CAM)
    events = run(cam, site, [a + b for a, b in zip(near_walker, far_runner, strict=True)])
    assert [e.track_ids for _, e in events] == [[2]]
    assert events[0][1].attributes["speed"] == pytest.approx(3.0, abs=0.01)

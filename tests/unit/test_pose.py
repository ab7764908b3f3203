"""Keypoint geometry (torso angle, height spread, person down) on synthetic skeletons, and
the pose model's crop geometry (``triton_models/pose/1/poselib.py``), table style."""

from __future__ import annotations

import math
from functools import lru_cache
from types import ModuleType

import numpy as np
import pytest

from argus.inference.pose import (
    KEYPOINT_NAMES,
    Keypoints,
    box_values,
    down_score,
    height_spread,
    keypoints_from,
    person_down,
    torso_angle,
)
from argus.modelcode import load_module_from_path
from argus.settings import REPO_ROOT
from schemas.detections import Box

# Where each keypoint lies along a straight body (0 head top .. 1 feet) and across it
# (fraction of the body length, + = the person's left).
BODY = {
    "nose": (0.04, 0.0), "left_eye": (0.02, 0.02), "right_eye": (0.02, -0.02),
    "left_ear": (0.03, 0.04), "right_ear": (0.03, -0.04),
    "left_shoulder": (0.18, 0.1), "right_shoulder": (0.18, -0.1),
    "left_elbow": (0.33, 0.12), "right_elbow": (0.33, -0.12),
    "left_wrist": (0.46, 0.12), "right_wrist": (0.46, -0.12),
    "left_hip": (0.52, 0.06), "right_hip": (0.52, -0.06),
    "left_knee": (0.76, 0.06), "right_knee": (0.76, -0.06),
    "left_ankle": (1.0, 0.06), "right_ankle": (1.0, -0.06),
}


def skeleton(angle: float, aspect: float = 1.0, length: float = 0.5,
             centre: tuple[float, float] = (0.5, 0.5), score: float = 0.9,
             hide: tuple[str, ...] = ()) -> Keypoints:
    """A straight body whose head → feet axis is ``angle`` degrees from the image vertical
    (positive: feet to the right), in normalised coordinates of an image ``aspect`` wide."""
    theta = math.radians(angle)
    along = np.array([math.sin(theta), math.cos(theta)])  # pixels, y down
    across = np.array([along[1], -along[0]])
    points = {}
    for name, (t, s) in BODY.items():
        p = np.array([centre[0] * aspect, centre[1]]) + length * ((t - 0.5) * along + s * across)
        points[name] = (float(p[0] / aspect), float(p[1]), 0.0 if name in hide else score)
    return keypoints_from(points)


UPRIGHT = skeleton(0)
LYING = skeleton(90)


@pytest.mark.parametrize(("name", "keypoints", "aspect", "expected"), [
    ("upright", UPRIGHT, 1.0, 0.0),
    ("lying", LYING, 1.0, 90.0),
    ("tilted 30", skeleton(30), 1.0, 30.0),
    ("tilted 45 the other way", skeleton(-45), 1.0, 45.0),
    ("head down", skeleton(180), 1.0, 180.0),
    ("45 on a 4:3 image", skeleton(45, aspect=4 / 3), 4 / 3, 45.0),
    ("4:3 image read as square", skeleton(45, aspect=4 / 3), 1.0, math.degrees(
        math.atan(0.75))),
    # right shoulder → left hip: 0.34 along the body and 0.16 across it
    ("one shoulder and one hip", skeleton(60, hide=("left_shoulder", "right_hip")), 1.0,
     60.0 + math.degrees(math.atan2(0.16, 0.34))),
])
def test_torso_angle(name: str, keypoints: Keypoints, aspect: float, expected: float) -> None:
    angle = torso_angle(keypoints, aspect)
    assert angle == pytest.approx(expected, abs=0.01), name


@pytest.mark.parametrize(("name", "keypoints"), [
    ("no hips", skeleton(0, hide=("left_hip", "right_hip"))),
    ("no shoulders", skeleton(0, hide=("left_shoulder", "right_shoulder"))),
    ("all weak", skeleton(0, score=0.1)),
    ("shoulders on the hips", keypoints_from({"left_shoulder": (0.5, 0.5),
                                              "left_hip": (0.5, 0.5)})),
])
def test_torso_angle_unknown(name: str, keypoints: Keypoints) -> None:
    assert torso_angle(keypoints) is None, name


@pytest.mark.parametrize(("name", "keypoints", "aspect", "low", "high"), [
    ("upright", UPRIGHT, 1.0, 1.0, 1.0),
    ("lying", LYING, 1.0, 0.2, 0.3),
    ("tilted 45", skeleton(45), 1.0, 0.95, 1.0),
    ("lying, wide image", skeleton(90, aspect=16 / 9), 16 / 9, 0.2, 0.3),
    ("tilted 60", skeleton(60), 1.0, 0.6, 0.7),
    ("tilted 70", skeleton(70), 1.0, 0.4, 0.5),
])
def test_height_spread(name: str, keypoints: Keypoints, aspect: float, low: float,
                       high: float) -> None:
    spread = height_spread(keypoints, aspect)
    assert spread is not None and low <= spread <= high, (name, spread)


def test_height_spread_needs_two_points() -> None:
    assert height_spread(keypoints_from({"nose": (0.5, 0.5)})) is None
    assert height_spread(keypoints_from({"nose": (0.5, 0.5), "left_eye": (0.5, 0.5)})) is None


@pytest.mark.parametrize(("name", "keypoints", "down", "confidence"), [
    ("standing", UPRIGHT, False, 1.0),
    ("leaning 20", skeleton(20), False, 1.0),
    ("leaning 40", skeleton(40), False, 2 / 3),
    ("at the threshold 45", skeleton(45), True, 0.5),
    ("fallen 55", skeleton(55), True, 5 / 6),
    ("lying", LYING, True, 1.0),
    ("lying, feet left", skeleton(-90), True, 1.0),
    ("head below hips", skeleton(150), True, 1.0),
    ("lying, torso hidden: the spread decides", skeleton(
        90, hide=("left_shoulder", "right_shoulder", "left_hip", "right_hip")), True, 1.0),
    ("standing, torso hidden", skeleton(
        0, hide=("left_shoulder", "right_shoulder", "left_hip", "right_hip")), False, 1.0),
    ("too few points without a torso", keypoints_from(
        {"left_knee": (0.3, 0.8), "left_ankle": (0.5, 0.8), "nose": (0.1, 0.8)}), False, 0.0),
    ("nothing visible", skeleton(90, score=0.05), False, 0.0),
])
def test_person_down(name: str, keypoints: Keypoints, down: bool, confidence: float) -> None:
    assert person_down(keypoints) == (down, pytest.approx(confidence, abs=0.01)), name


def test_person_down_uses_the_aspect_ratio() -> None:
    """A torso at 55° in pixels on a 16:9 frame would be 39° if the frame were read as
    square (normalised x shrinks widths)."""
    kp = skeleton(55, aspect=16 / 9)
    assert person_down(kp, 16 / 9) == (True, pytest.approx(5 / 6, abs=0.01))
    assert person_down(kp, 1.0)[0] is False


def test_min_score_hides_weak_keypoints() -> None:
    kp = skeleton(90, score=0.3)
    assert down_score(kp, min_score=0.25) == 1.0
    assert down_score(kp, min_score=0.35) is None


def test_keypoint_names_are_coco() -> None:
    assert len(KEYPOINT_NAMES) == 17 and KEYPOINT_NAMES[5:7] == ("left_shoulder",
                                                                  "right_shoulder")
    assert box_values(Box(x1=0.1, y1=0.2, x2=0.3, y2=0.4)) == [0.1, 0.2, 0.3, 0.4]
    assert box_values(None) == [0.0, 0.0, 0.0, 0.0]


# --- the pose model's crop geometry (the code Triton serves) ---

@lru_cache(maxsize=1)
def poselib() -> ModuleType:
    return load_module_from_path("argus_triton_pose_poselib",
                                 REPO_ROOT / "triton_models" / "pose" / "1" / "poselib.py")


@pytest.mark.parametrize(("box", "margin", "size", "expected"), [
    ((10, 20, 30, 60), 0.0, (100, 100), (0.0, 20.0, 40.0)),  # tall: widened around the centre
    ((10, 20, 30, 60), 0.25, (100, 100), (-10.0, 10.0, 60.0)),
    ((0, 40, 80, 60), 0.0, (100, 100), (0.0, 10.0, 80.0)),  # wide: heightened
    ((50, 50, 50, 90), 0.1, (200, 100), (0.0, -50.0, 200.0)),  # degenerate: whole image
])
def test_square_region(box: tuple[float, ...], margin: float, size: tuple[int, int],
                       expected: tuple[float, float, float]) -> None:
    assert poselib().square_region(box, margin, *size) == expected


def test_crop_pads_outside_the_image_and_maps_back() -> None:
    """A white image: the crop is white inside the image and black padding outside, and a
    point of the crop maps back to where it was cut from."""
    lib = poselib()
    image = np.full((100, 200, 3), 255, dtype=np.uint8)
    image[40:50, 150:160] = (0, 0, 255)  # a red square (BGR)
    region = lib.square_region((120, 40, 190, 100), 0.0, 200, 100)  # 70 x 70 at (120, 35)
    assert region == (120.0, 35.0, 70.0)
    crop = lib.crop_input(image, region, 192)
    assert crop.shape == (1, 192, 192, 3) and crop.dtype == np.int32
    assert crop[0, 5, 5].tolist() == [255, 255, 255]
    assert crop[0, 186, 5].tolist() == [0, 0, 0]  # below the image: padding
    red = np.argwhere((crop[0, :, :, 0] > 200) & (crop[0, :, :, 2] < 50))
    ry, rx = red.mean(axis=0) / 192.0  # the red square in crop coordinates (0..1)
    (x, y, score), = lib.to_image([[ry, rx, 0.7]], region, 200, 100).tolist()
    assert (x * 200, y * 100) == (pytest.approx(155, abs=1), pytest.approx(45, abs=1))
    assert score == pytest.approx(0.7)


def test_decode_jpeg_refuses_bad_bytes() -> None:
    lib = poselib()
    with pytest.raises(ValueError, match="cannot decode JPEG"):
        lib.decode_jpeg(b"")
    with pytest.raises(ValueError, match="cannot decode JPEG"):
        lib.decode_jpeg(b"not a jpeg at all")

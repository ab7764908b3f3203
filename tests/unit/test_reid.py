"""Appearance embeddings: the detector's crop/quantise code, the wire codec, the cost fusion."""

from __future__ import annotations

import base64
import math
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from argus.inference.reid import (
    AppearanceConfig,
    attach_embeddings,
    cosine_distance,
    decode_embedding,
    ema_update,
    embeddings_of,
    encode_embedding,
    fuse_cost,
    load_appearance_module,
    updatable,
)
from argus.settings import get_settings
from schemas.detections import Box, Detection, Detections
from tools.models import fetch

APP: Any = load_appearance_module()
NAN = math.nan


def unit(*values: float, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[: len(values)] = values
    return np.asarray(v / np.linalg.norm(v), dtype=np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_codec_round_trip_keeps_cosine(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = (np.abs(rng.normal(size=512)).astype(np.float32) for _ in range(2))  # OSNet: >= 0
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    text = encode_embedding(a)
    assert len(text) == 684  # 512 bytes in base64
    da, db = decode_embedding(text), decode_embedding(encode_embedding(b))
    assert float(np.linalg.norm(da)) == pytest.approx(1.0, abs=1e-6)
    assert float(da @ a) > 0.9995
    assert float(da @ db) == pytest.approx(float(a @ b), abs=0.005)


def test_triton_quantisation_and_wire_codec_agree() -> None:
    """``appearance.quantize`` (in Triton) then ``encode_embedding`` (detect stage) keeps the
    int8 codes unchanged: peak 127 is already the codec's scale."""
    v = np.array([[0.1, -0.3, 0.05, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    codes = APP.quantize(v)
    assert codes.dtype == np.int8 and codes[0].tolist() == [42, -127, 21, 0]
    assert codes[1].tolist() == [0, 0, 0, 0]  # an all-zero row stays "no embedding"
    raw = np.frombuffer(base64.b64decode(encode_embedding(codes[0])), np.int8)
    assert raw.tolist() == codes[0].tolist()


@pytest.mark.parametrize(("text", "error"), [
    ("AAAAAAAA", "all zeros"),
    ("not base64!", "not base64"),
])
def test_unreadable_embeddings_are_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode_embedding(text)


def test_all_zero_vectors_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="all-zero"):
        encode_embedding(np.zeros(4))


@pytest.mark.parametrize(("tracks", "boxes", "expected"), [
    ([unit(1)], [unit(1)], [[0.0]]),
    ([unit(1)], [unit(0, 1)], [[1.0]]),
    ([unit(1, 1)], [unit(1)], [[1 - math.sqrt(0.5)]]),
    ([np.zeros(8)], [unit(1)], [[NAN]]),               # the track has no embedding yet
    ([unit(1)], [unit(1), np.zeros(8)], [[0.0, NAN]]),  # the box has none
])
def test_cosine_distance(tracks: list[np.ndarray], boxes: list[np.ndarray],
                         expected: list[list[float]]) -> None:
    np.testing.assert_allclose(cosine_distance(np.array(tracks), np.array(boxes)),
                               expected, atol=1e-6)


@pytest.mark.parametrize(("iou_cost", "distance", "expected"), [
    (0.7, 0.1, 0.05),   # appearance vouches: half the cosine distance
    (0.1, 0.5, 0.1),    # IoU is already cheaper
    (0.7, 0.65, 0.7),   # beyond max_distance 0.6: IoU only
    (0.7, NAN, 0.7),    # unknown appearance: IoU only
    (0.9, 0.6, 0.3),    # exactly max_distance still vouches
])
def test_fuse_cost(iou_cost: float, distance: float, expected: float) -> None:
    fused = fuse_cost(np.array([[iou_cost]]), np.array([[distance]]), AppearanceConfig())
    assert fused[0, 0] == pytest.approx(expected)


@pytest.mark.parametrize(("overlap", "scores", "expected"), [
    (0.0, [0.9, 0.9], [True, True]),
    (0.0, [0.9, 0.4], [True, False]),   # below min_update_score 0.5
    (0.35, [0.9, 0.9], [False, False]),  # overlapping boxes show two people
    (0.2, [0.9, 0.9], [True, True]),
])
def test_only_clean_views_update_a_track(overlap: float, scores: list[float],
                                         expected: list[bool]) -> None:
    iou = np.array([[1.0, overlap], [overlap, 1.0]])
    assert updatable(iou, np.array(scores), AppearanceConfig()).tolist() == expected


def test_ema_update_stays_unit_length() -> None:
    first = ema_update(None, unit(1), 0.9)
    assert first.tolist() == unit(1).tolist()
    mixed = ema_update(first, unit(0, 1), 0.9)
    assert float(np.linalg.norm(mixed)) == pytest.approx(1.0, abs=1e-6)
    assert mixed[0] == pytest.approx(0.9 / math.hypot(0.9, 0.1), abs=1e-6)


def detections(n: int) -> Detections:
    dets = [Detection(box=Box(x1=0.1 * i, y1=0.1, x2=0.1 * i + 0.05, y2=0.3), class_id=0,
                      class_name="person", score=0.9) for i in range(n)]
    return Detections(camera_id="c", seq=1, capture_ts=1.0, width=480, height=360,
                      detections=dets, model="detector", model_version="1", inference_ms=1.0)


def test_attach_embeddings_skips_padding_and_empty_rows() -> None:
    classes = np.array([0, 0, 0, -1])  # three detections and one padding row
    codes = np.zeros((4, 8), dtype=np.int8)
    codes[0, 0], codes[2, 1], codes[3, 2] = 127, 127, 127
    out = attach_embeddings(detections(3), classes, codes, "osnet")
    assert out.embedding_model == "osnet"
    assert [d.embedding is not None for d in out.detections] == [True, False, True]
    feats = embeddings_of(list(out.detections))
    assert feats is not None
    np.testing.assert_allclose(feats, [unit(1), np.zeros(8), unit(0, 1)], atol=1e-6)


@pytest.mark.parametrize("codes", [
    None,                                # the detector sent none
    np.zeros((3, 0), dtype=np.int8),     # reid "none": zero columns
    np.zeros((3, 8), dtype=np.int8),     # no person above the floor
    np.ones((2, 8), dtype=np.int8),      # rows do not match the detections
])
def test_attach_embeddings_leaves_the_message_alone(codes: np.ndarray | None) -> None:
    message = detections(3)
    assert attach_embeddings(message, np.zeros(3), codes, "osnet") == message
    assert embeddings_of(list(message.detections)) is None


def test_schema_refuses_a_non_base64_embedding() -> None:
    with pytest.raises(ValidationError):
        Detection(box=Box(x1=0, y1=0, x2=0.1, y2=0.1), class_id=0, class_name="person",
                  score=0.9, embedding="not base64!")


@pytest.mark.parametrize(("scores", "classes", "floor", "most", "expected"), [
    ([0.9, 0.6, 0.4, 0.8], [0, 0, 0, 2], 0.5, 32, [0, 1]),   # persons above the floor
    ([0.6, 0.9, 0.7], [0, 0, 0], 0.5, 2, [1, 2]),            # best scores first, capped
    ([0.9], [2], 0.5, 32, []),                               # no person
])
def test_select(scores: list[float], classes: list[int], floor: float, most: int,
                expected: list[int]) -> None:
    assert APP.select(scores, classes, [0], floor, most).tolist() == expected


def test_crops_are_rgb_imagenet_normalised() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[:, :, 2] = 255  # pure red in BGR
    out = APP.crops(image, [[0.1, 0.1, 0.3, 0.9], [0.999, 0.999, 1.0, 1.0]])
    assert out.shape == (2, 3, 256, 128) and out.dtype == np.float32
    expected = (np.array([1.0, 0.0, 0.0]) - APP.MEAN) / APP.STD  # R, G, B planes
    np.testing.assert_allclose(out[0].mean(axis=(1, 2)), expected, rtol=1e-5)
    np.testing.assert_allclose(out[1].mean(axis=(1, 2)), expected, rtol=1e-5)  # tiny box


def test_crops_equal_the_per_crop_reference() -> None:
    """Resized as uint8 and converted plane by plane in place: bit-identical to converting
    each crop on its own; crops_many is the crops of each image in order."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (432, 768, 3), dtype=np.uint8),
              rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)]
    corners = rng.uniform(-0.1, 0.9, (2, 7, 2))
    boxes = [np.concatenate([c, c + rng.uniform(0.0, 0.4, (7, 2))], axis=1) for c in corners]
    for image, item_boxes in zip(images, boxes, strict=True):
        want = []
        height, width = image.shape[:2]
        for left, top, right, bottom in APP.crop_windows(height, width, item_boxes):
            patch = cv2.resize(image[top:bottom, left:right], (APP.INPUT_WIDTH, APP.INPUT_HEIGHT),
                               interpolation=cv2.INTER_LINEAR)
            rgb = patch[:, :, ::-1].astype(np.float32) / np.float32(255.0)
            want.append(((rgb - APP.MEAN) / APP.STD).transpose(2, 0, 1))
        np.testing.assert_array_equal(APP.crops(image, item_boxes), np.stack(want))
    np.testing.assert_array_equal(
        APP.crops_many(list(zip(images, boxes, strict=True))),
        np.concatenate([APP.crops(i, b) for i, b in zip(images, boxes, strict=True)]))
    assert APP.crops(images[0], np.zeros((0, 4))).shape == (0, 3, 256, 128)


def test_osnet_tells_two_pets_people_apart() -> None:
    """The real model on two PETS frames (0.1 s apart): each person is closer to themself
    than to the other."""
    settings = get_settings()
    # resolve the model here: a unit test must not rely on a stack having fetched it
    runner = APP.ReidRunner(str(fetch(settings, ["osnet_x0_25"])["osnet_x0_25"]))
    capture = cv2.VideoCapture(str(settings.shared / "data" / "pets09_s2l1" / "vtest.avi"))
    images = [capture.read()[1] for _ in range(2)]
    capture.release()
    # three people of the ground truth (ids 15, 19, 9 of gt_frames_001_300.txt), normalised
    frame1 = [[0.336, 0.38, 0.379, 0.534], [0.824, 0.42, 0.879, 0.561],
              [0.65, 0.274, 0.69, 0.405]]
    frame2 = [[0.342, 0.378, 0.385, 0.532], [0.816, 0.42, 0.871, 0.561],
              [0.647, 0.274, 0.688, 0.405]]
    emb1, emb2 = runner.embed(images[0], frame1), runner.embed(images[1], frame2)
    assert emb1.shape == emb2.shape == (3, 512)
    # both frames' crops through the network together: the same vectors, item by item
    many = runner.embed_many([(images[0], frame1), (images[1], np.zeros((0, 4))),
                              (images[1], frame2)])
    assert [m.shape for m in many] == [(3, 512), (0, 512), (3, 512)]
    np.testing.assert_allclose(many[0], emb1, atol=1e-5)
    np.testing.assert_allclose(many[2], emb2, atol=1e-5)
    assert runner.embed_many([]) == []
    distance = 1 - emb1 @ emb2.T  # measured: ~0.08 on the diagonal, >= 0.5 elsewhere
    off_diagonal = distance[~np.eye(3, dtype=bool)]
    assert float(np.diag(distance).max()) < 0.2 < 0.4 < float(off_diagonal.min()), distance

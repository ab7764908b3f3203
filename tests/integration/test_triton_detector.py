"""The Triton ``detector`` model on the session's real Triton server (gRPC).

Real PETS 2009 frames go in as JPEG bytes; the person detections that come back are checked
against the ground truth and against the plain-loop reference (``DetectorRunner`` in this
process), and corrupt JPEGs must fail with ``corrupt_jpeg`` without hurting other requests.
Person boxes get re-id embeddings when a request asks for ``EMBEDDINGS``.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from argus.inference.reid import load_appearance_module
from argus.modelcode import load_yolox_module
from argus.settings import Settings

pytestmark = pytest.mark.integration

MODEL = "detector"
OUTPUTS = ("BOXES", "SCORES", "CLASSES", "IMAGE_SIZE")
PETS_SCALE = 0.625  # ground truth is in 768x576 pixels, the video is 480x360
VIDEO_WH = np.array([480, 360, 480, 360], dtype=np.float32)
BATCH_FRAMES = (50, 100, 150, 200)


# --- PETS frames and ground truth ----------------------------------------------------------

def pets_dir(settings: Settings) -> Path:
    return settings.shared / "data" / "pets09_s2l1"


def pets_jpegs(settings: Settings, frames: tuple[int, ...]) -> dict[int, bytes]:
    """The given frames (1-based, as in the ground truth) of the PETS video as JPEG bytes."""
    capture = cv2.VideoCapture(str(pets_dir(settings) / "vtest.avi"))
    out: dict[int, bytes] = {}
    try:
        for frame in range(1, max(frames) + 1):
            ok, image = capture.read()
            assert ok, f"cannot read frame {frame} of the PETS video"
            if frame in frames:
                ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                assert ok
                out[frame] = bytes(encoded.tobytes())
    finally:
        capture.release()
    return out


def pets_ground_truth(settings: Settings, frame: int) -> np.ndarray:
    """Ground-truth person boxes of a frame, x1, y1, x2, y2 in 480x360 video pixels."""
    rows = np.loadtxt(pets_dir(settings) / "gt_frames_001_300.txt", delimiter=",", ndmin=2)
    rows = rows[rows[:, 0] == frame]
    x, y, w, h = (rows[:, i] * PETS_SCALE for i in (2, 3, 4, 5))
    return np.stack((x, y, x + w, y + h), axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (rows) with every box of ``b`` (columns), x1, y1, x2, y2."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter))


def check_persons_against_ground_truth(persons_px: np.ndarray, gt: np.ndarray) -> None:
    """Plausible person detections for a PETS frame (same rule as the unit test).

    The count lies between 60 % of the annotated people and 5 more than them; at least 60 %
    of the annotated people are found (IoU >= 0.5); at most 3 detections overlap nobody
    annotated (the PETS ground truth leaves out a few people far in the background).
    """
    assert len(gt) > 0
    count = len(persons_px)
    assert math.ceil(0.6 * len(gt)) <= count <= len(gt) + 5, (count, len(gt))
    iou = iou_matrix(persons_px, gt)
    found = int((iou.max(axis=0) >= 0.5).sum())
    assert found >= math.ceil(0.6 * len(gt)), (found, len(gt), iou.round(2))
    unannotated = int((iou.max(axis=1) < 0.3).sum())
    assert unannotated <= 3, (unannotated, iou.round(2))


# --- Triton --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(stack: Settings) -> Iterator[grpcclient.InferenceServerClient]:
    triton = grpcclient.InferenceServerClient(stack.triton_grpc_url)
    deadline = time.monotonic() + 60
    while True:
        try:
            if triton.is_model_ready(MODEL):
                break
        except InferenceServerException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"Triton at {stack.triton_grpc_url} has no READY model {MODEL!r}")
        time.sleep(0.5)
    yield triton
    triton.close()


@pytest.fixture(scope="module")
def frames(stack: Settings) -> dict[int, bytes]:
    return pets_jpegs(stack, (1, *BATCH_FRAMES))


def image_input(jpegs: list[bytes]) -> grpcclient.InferInput:
    batch = np.array(jpegs, dtype=np.object_).reshape(len(jpegs), 1)
    tensor = grpcclient.InferInput("IMAGE", list(batch.shape), "BYTES")
    tensor.set_data_from_numpy(batch)
    return tensor


def requested_outputs() -> list[grpcclient.InferRequestedOutput]:
    return [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]


def infer(client: grpcclient.InferenceServerClient, jpegs: list[bytes]) -> dict[str, np.ndarray]:
    result = client.infer(MODEL, [image_input(jpegs)], outputs=requested_outputs())
    return {name: result.as_numpy(name) for name in OUTPUTS}


def item_detections(out: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, ...]:
    """Batch item ``i`` without its padding rows: boxes, scores, classes."""
    valid = out["CLASSES"][i] >= 0
    return out["BOXES"][i][valid], out["SCORES"][i][valid], out["CLASSES"][i][valid]


def persons_px(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes[(classes == 0) & (scores >= 0.3)] * VIDEO_WH)


def test_one_frame(
    client: grpcclient.InferenceServerClient, frames: dict[int, bytes], stack: Settings
) -> None:
    out = infer(client, [frames[1]])
    assert out["IMAGE_SIZE"].tolist() == [[480, 360]]
    assert out["BOXES"].dtype == np.float32 and out["BOXES"].shape[0] == 1
    assert out["BOXES"].shape[2] == 4
    assert out["CLASSES"].dtype == np.int32 and out["SCORES"].dtype == np.float32
    boxes, scores, classes = item_detections(out, 0)
    assert len(scores) > 0  # real values, never an empty tensor
    assert np.all((boxes >= 0) & (boxes <= 1))
    check_persons_against_ground_truth(persons_px(boxes, scores, classes),
                                       pets_ground_truth(stack, 1))


def test_batch_of_four_frames(
    client: grpcclient.InferenceServerClient, frames: dict[int, bytes], stack: Settings
) -> None:
    out = infer(client, [frames[f] for f in BATCH_FRAMES])
    assert out["IMAGE_SIZE"].tolist() == [[480, 360]] * 4
    rows = out["BOXES"].shape[1]
    assert out["BOXES"].shape == (4, rows, 4)
    assert out["SCORES"].shape == out["CLASSES"].shape == (4, rows)
    counts = []
    for i, frame in enumerate(BATCH_FRAMES):
        boxes, scores, classes = item_detections(out, i)
        padding = out["CLASSES"][i] < 0
        assert np.all(out["CLASSES"][i][padding] == -1)
        assert np.all(out["SCORES"][i][padding] == 0)
        counts.append(len(scores))
        check_persons_against_ground_truth(persons_px(boxes, scores, classes),
                                           pets_ground_truth(stack, frame))
    assert rows == max(counts)  # padded to the largest count of the request


def test_matches_the_plain_loop_reference(
    client: grpcclient.InferenceServerClient, frames: dict[int, bytes], stack: Settings
) -> None:
    """Triton serves the same yolox.py as the application's DetectorRunner (only the OpenCV
    builds differ between the two environments, so boxes may move by a pixel)."""
    yolox: Any = load_yolox_module()
    runner = yolox.DetectorRunner(str(stack.shared / "models" / "yolox_nano.onnx"))
    for frame in (1, *BATCH_FRAMES):
        ref_boxes, ref_scores, ref_classes, _ = runner.detect_jpeg(frames[frame])
        boxes, scores, classes = item_detections(infer(client, [frames[frame]]), 0)
        ref_people = persons_px(ref_boxes, ref_scores, ref_classes)
        people = persons_px(boxes, scores, classes)
        assert abs(len(people) - len(ref_people)) <= 1, (frame, len(people), len(ref_people))
        iou = iou_matrix(people, ref_people)
        assert int((iou.max(axis=1) >= 0.8).sum()) >= min(len(people), len(ref_people)) - 1


@pytest.mark.parametrize("corruption", ["truncated", "random", "empty"])
def test_corrupt_jpeg_is_an_error(
    client: grpcclient.InferenceServerClient, frames: dict[int, bytes], corruption: str
) -> None:
    bad = {
        "truncated": frames[1][:300],
        "random": np.random.default_rng(3).bytes(20_000),
        "empty": b"",
    }[corruption]
    with pytest.raises(InferenceServerException, match="corrupt_jpeg"):
        infer(client, [bad])
    with pytest.raises(InferenceServerException, match="corrupt_jpeg"):
        infer(client, [frames[1], bad])  # one bad item fails its whole request


def test_corrupt_request_does_not_fail_its_neighbours(
    client: grpcclient.InferenceServerClient, frames: dict[int, bytes]
) -> None:
    """Good and corrupt requests sent together (the dynamic batcher may run them in one
    execute call): only the corrupt ones fail."""
    jobs = [frames[1], frames[1][:300], frames[50], b"\x00" * 100, frames[100], frames[150]]
    results: dict[int, Any] = {}
    done = threading.Semaphore(0)

    def callback(index: int, result: Any, error: Any) -> None:
        results[index] = error if error is not None else result
        done.release()

    for index, jpeg in enumerate(jobs):
        client.async_infer(MODEL, [image_input([jpeg])],
                           callback=functools.partial(callback, index),
                           outputs=requested_outputs())
    for _ in jobs:
        assert done.acquire(timeout=30), "Triton did not answer every request"
    for index in (1, 3):
        assert isinstance(results[index], InferenceServerException)
        assert "corrupt_jpeg" in str(results[index])
    for index in (0, 2, 4, 5):
        result = results[index]
        assert not isinstance(result, InferenceServerException), result
        assert result.as_numpy("IMAGE_SIZE").tolist() == [[480, 360]]
        classes = result.as_numpy("CLASSES")[0]
        assert int((classes == 0).sum()) >= 3


def test_embeddings_for_person_boxes(
    client: grpcclient.InferenceServerClient, frames: dict[int, bytes], stack: Settings
) -> None:
    """``EMBEDDINGS`` (asked for explicitly): an int8 row per box, non-zero exactly for the
    person boxes above the config's re-id floor (0.5), matching the application's own run
    of ``appearance.py``; ``REID_MODEL`` names the model."""
    names = (*OUTPUTS, "EMBEDDINGS", "REID_MODEL")
    jpegs = [frames[f] for f in BATCH_FRAMES[:2]]
    result = client.infer(MODEL, [image_input(jpegs)],
                          outputs=[grpcclient.InferRequestedOutput(n) for n in names])
    codes = result.as_numpy("EMBEDDINGS")
    assert codes is not None and codes.dtype == np.int8
    assert codes.shape == (*result.as_numpy("CLASSES").shape, 512)
    assert result.as_numpy("REID_MODEL").reshape(-1).tolist() == [b"osnet_x0_25_msmt17"] * 2
    app: Any = load_appearance_module()
    reid = app.ReidRunner(str(stack.shared / "models" / "osnet_x0_25_msmt17.onnx"))
    yolox: Any = load_yolox_module()
    for i, jpeg in enumerate(jpegs):
        scores, classes = result.as_numpy("SCORES")[i], result.as_numpy("CLASSES")[i]
        wanted = (classes == 0) & (scores >= 0.5)
        assert int(wanted.sum()) >= 3
        assert (codes[i].any(axis=1) == wanted).all()
        assert (np.abs(codes[i][wanted]).max(axis=1) == 127).all()  # peak-scaled int8
        local = reid.embed(yolox.decode_jpeg(jpeg), result.as_numpy("BOXES")[i][wanted])
        served = app.dequantize(codes[i][wanted])
        assert float(np.min(np.sum(local * served, axis=1))) > 0.99


def test_reid_model_is_empty_without_embeddings(
    client: grpcclient.InferenceServerClient, frames: dict[int, bytes]
) -> None:
    """Asking only for ``REID_MODEL`` costs no re-id run and says so with an empty name."""
    result = client.infer(MODEL, [image_input([frames[1]])],
                          outputs=[grpcclient.InferRequestedOutput("REID_MODEL")])
    assert result.as_numpy("REID_MODEL").reshape(-1).tolist() == [b""]


def test_near_only_embeds_just_the_people_close_to_another(
    client: grpcclient.InferenceServerClient, frames: dict[int, bytes]
) -> None:
    """The request parameter ``reid=near``: embeddings only for the person boxes within half
    a box of another person (``appearance.near_others``), the rest zero rows; the same
    boxes otherwise."""
    names = (*OUTPUTS, "EMBEDDINGS")
    outputs = [grpcclient.InferRequestedOutput(n) for n in names]
    app: Any = load_appearance_module()
    for frame in BATCH_FRAMES[:2]:
        full = client.infer(MODEL, [image_input([frames[frame]])], outputs=outputs)
        near = client.infer(MODEL, [image_input([frames[frame]])], outputs=outputs,
                            parameters={"reid": "near"})
        boxes, scores, classes = (full.as_numpy(n)[0] for n in OUTPUTS[:3])
        assert (near.as_numpy("BOXES")[0] == boxes).all()
        wanted = np.nonzero((classes == 0) & (scores >= 0.5))[0]
        close = wanted[app.near_others(boxes, wanted, np.nonzero(classes == 0)[0])]
        embedded = np.nonzero(near.as_numpy("EMBEDDINGS")[0].any(axis=1))[0]
        assert embedded.tolist() == sorted(close.tolist())
        assert 0 < len(close) < len(wanted) or len(close) == len(wanted) > 0
        assert (near.as_numpy("EMBEDDINGS")[0][close]
                == full.as_numpy("EMBEDDINGS")[0][close]).all()

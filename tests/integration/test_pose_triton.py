"""The Triton ``pose`` model on the session's real Triton server (gRPC), on URFD frames.

A standing person (fall-01 frame 60) and the same person hitting the floor (frame 106),
each with the person box the detector finds there: keypoint layout and values, the
person-down verdict, batching, agreement with the in-process ``poselib`` reference, the
optional ``BOX``, ``corrupt_jpeg`` errors that fail only their own request, and the latency
per call.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from argus.inference.pose import TritonPose, person_down, torso_angle
from argus.inference.triton import Rejected
from argus.modelcode import load_module_from_path
from argus.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

STANDING = (60, (0.55, 0.22, 0.68, 0.71))
FALLEN = (106, (0.35, 0.53, 0.57, 0.99))
ASPECT = 320 / 240


def urfd_frames(settings: Settings, wanted: set[int]) -> dict[int, bytes]:
    """JPEGs of the RGB (right) half of the wanted fall-01 frames (1-based)."""
    cap = cv2.VideoCapture(str(settings.shared / "data" / "urfd_fall" / "fall-01-cam0.mp4"))
    out: dict[int, bytes] = {}
    index = 0
    while len(out) < len(wanted):
        ok, image = cap.read()
        assert ok, f"video ended before frames {sorted(wanted - set(out))}"
        index += 1
        if index in wanted:
            ok, jpeg = cv2.imencode(".jpg", image[:, image.shape[1] // 2:],
                                    [cv2.IMWRITE_JPEG_QUALITY, 90])
            out[index] = jpeg.tobytes()
    cap.release()
    return out


@pytest.fixture(scope="module")
def frames(stack: Settings) -> dict[int, bytes]:
    return urfd_frames(stack, {STANDING[0], FALLEN[0]})


async def ready_pose(settings: Settings) -> TritonPose:
    pose = TritonPose(settings.triton_grpc_url)
    deadline = time.monotonic() + 60
    while not await pose.ready():
        if time.monotonic() > deadline:
            pytest.fail(f"Triton at {settings.triton_grpc_url} has no READY model 'pose'")
        await asyncio.sleep(0.5)
    return pose


def test_standing_and_fallen(stack: Settings, frames: dict[int, bytes]) -> None:
    async def go() -> tuple[np.ndarray, np.ndarray]:
        pose = await ready_pose(stack)
        try:
            standing, _ = await pose.infer(frames[STANDING[0]], STANDING[1])
            fallen, _ = await pose.infer(frames[FALLEN[0]], FALLEN[1])
        finally:
            await pose.close()
        return standing, fallen

    standing, fallen = asyncio.run(go())
    assert standing.shape == (17, 3) and standing.dtype == np.float32
    # Standing: confident torso, head above hips above ankles, all inside the person box.
    assert standing[[5, 6, 11, 12], 2].min() > 0.4
    nose_y, hip_y, ankle_y = standing[0, 1], standing[11:13, 1].mean(), standing[15:17, 1].mean()
    assert nose_y < hip_y < ankle_y
    x1, y1, x2, y2 = STANDING[1]
    assert (standing[:, 0] > x1 - 0.05).all() and (standing[:, 0] < x2 + 0.05).all()
    assert (standing[:, 1] > y1 - 0.05).all() and (standing[:, 1] < y2 + 0.05).all()
    angle = torso_angle(standing, ASPECT)
    assert angle is not None and angle < 15
    assert person_down(standing, ASPECT)[0] is False
    # Hitting the floor: torso far from vertical.
    angle = torso_angle(fallen, ASPECT)
    assert angle is not None and angle > 60, angle
    down, confidence = person_down(fallen, ASPECT)
    assert down and confidence >= 0.9


def test_batch_matches_single_calls_and_local_reference(stack: Settings,
                                                        frames: dict[int, bytes]) -> None:
    client = grpcclient.InferenceServerClient(stack.triton_grpc_url)
    items: list[tuple[bytes, tuple[float, ...]]] = [
        (frames[STANDING[0]], STANDING[1]), (frames[FALLEN[0]], FALLEN[1]),
             (frames[STANDING[0]], (0.0, 0.0, 0.0, 0.0))]  # degenerate box: whole image

    def infer(batch: list[tuple[bytes, tuple[float, ...]]]) -> np.ndarray:
        image = grpcclient.InferInput("IMAGE", [len(batch), 1], "BYTES")
        image.set_data_from_numpy(np.array([[j] for j, _ in batch], dtype=np.object_))
        box = grpcclient.InferInput("BOX", [len(batch), 4], "FP32")
        box.set_data_from_numpy(np.array([b for _, b in batch], dtype=np.float32))
        result = client.infer("pose", [image, box], outputs=[
            grpcclient.InferRequestedOutput("KEYPOINTS"),
            grpcclient.InferRequestedOutput("IMAGE_SIZE")])
        assert result.as_numpy("IMAGE_SIZE").tolist() == [[320, 240]] * len(batch)
        keypoints = result.as_numpy("KEYPOINTS")
        assert keypoints is not None
        return keypoints

    try:
        batched = infer(items)
        singles = np.stack([infer([item])[0] for item in items])
    finally:
        client.close()
    assert batched.shape == (3, 17, 3)
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    # The whole frame (no box) still finds the standing person, less precisely.
    assert abs(batched[2, 5:7, 0].mean() - batched[0, 5:7, 0].mean()) < 0.05
    # The same code in this process (numpy 2, another OpenCV build) agrees.
    poselib = load_module_from_path("argus_triton_pose_poselib",
                                    REPO_ROOT / "triton_models" / "pose" / "1" / "poselib.py")
    runner = poselib.PoseRunner(str(stack.models_dir / "movenet-lightning.onnx"))
    for index in (0, 1):
        local = runner.estimate_jpeg(*items[index])
        confident = (local[:, 2] > 0.3) & (batched[index, :, 2] > 0.3)
        assert confident.sum() >= 5
        np.testing.assert_allclose(local[confident, :2], batched[index, confident, :2],
                                   atol=0.02)


def test_corrupt_jpeg_fails_only_its_request(stack: Settings,
                                             frames: dict[int, bytes]) -> None:
    async def go() -> list[object]:
        pose = await ready_pose(stack)
        try:
            return list(await asyncio.gather(
                pose.infer(frames[STANDING[0]][:500], STANDING[1]),
                pose.infer(frames[STANDING[0]], STANDING[1]), return_exceptions=True))
        finally:
            await pose.close()

    bad, good = asyncio.run(go())
    assert isinstance(bad, Rejected) and bad.reason == "corrupt_jpeg"
    assert isinstance(good, tuple) and good[0][5:7, 2].min() > 0.4


def test_latency_per_call(stack: Settings, frames: dict[int, bytes]) -> None:
    """Sequential calls through Triton (gRPC, JPEG decode + crop + MoveNet): well under the
    frame interval of a 5 fps camera on this 2-core CPU machine (~10 ms measured)."""
    async def go() -> list[float]:
        pose = await ready_pose(stack)
        try:
            await pose.infer(frames[FALLEN[0]], FALLEN[1])
            return [(await pose.infer(frames[FALLEN[0]], FALLEN[1]))[1] for _ in range(20)]
        finally:
            await pose.close()

    latencies = asyncio.run(go())
    assert statistics.median(latencies) < 100, latencies

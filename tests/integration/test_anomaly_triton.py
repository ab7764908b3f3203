"""The Triton ``anomaly`` model and the anomaly stage on the session's real Triton server.

A model is trained (the code of ``argus train anomaly``) on the normal frames of UCSD Ped2
clips 01 and 02 for a camera id of this test only, written where Triton looks for camera
models, and removed afterwards. Frames of clip 04 (never trained on: normal 0-29, a
bicycle/cart from frame 30) then go to Triton as JPEG pairs, and through
``AnomalyAgent.handle`` as ``frames.raw`` records.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from argus.settings import Settings
from argus.topology import Topology
from pipelines.stages.anomaly.agent import (
    AnomalyAgent,
    AnomalyResult,
    AnomalySettings,
    NoModel,
    TritonAnomaly,
)
from pipelines.stages.anomaly.features import decode_gray, load_scorer
from schemas.events import VideoEvent
from schemas.frames import FrameHeaders
from tools.train_anomaly import (
    KnnParams,
    clip_features,
    clip_labels,
    config_for,
    export_onnx,
    load_labels,
    normal_pairs,
    train,
)

pytestmark = pytest.mark.integration

SITE = {"id": "ped2-site", "lat": 32.88, "lon": -117.23, "zones": [{"id": "plaza"}]}


def ped2(settings: Settings) -> Path:
    return settings.shared / "data" / "ucsd_ped2"


def frame(settings: Settings, clip: str, index: int) -> bytes:
    return (ped2(settings) / "frames" / clip / f"{index:03d}.jpg").read_bytes()


@pytest.fixture(scope="module")
def camera_model(stack: Settings) -> Iterator[tuple[str, Path]]:
    """(camera id, model path) of a model trained on Ped2 clips 01-02 for this test."""
    root = ped2(stack)
    labels = load_labels(root / "frame_labels.csv")
    config = config_for(root / "frames" / "01" / "000.jpg")
    groups = []
    for clip in ("01", "02"):
        paths = sorted((root / "frames" / clip).glob("*.jpg"))
        y = clip_labels(labels, clip, len(paths))
        groups.append(clip_features(paths, config)[normal_pairs(y)])
    params = KnnParams()
    model, threshold, _ = train(groups, config, params)
    camera = f"anomaly-test-{uuid.uuid4().hex[:8]}"
    path = stack.models_dir / "anomaly" / f"{camera}.onnx"
    export_onnx(model, config, threshold, params, path)
    try:
        yield camera, path
    finally:
        path.unlink(missing_ok=True)


def test_triton_scores_an_abnormal_frame_above_a_normal_one(
        stack: Settings, camera_model: tuple[str, Path]) -> None:
    camera, path = camera_model
    client = TritonAnomaly(stack.triton_grpc_url)

    async def run() -> tuple[list[AnomalyResult], NoModel | None]:
        try:
            pairs = [(frame(stack, "04", i - 1), frame(stack, "04", i)) for i in (10, 20, 100)]
            results = [await client.infer(a, b, camera) for a, b in pairs]
            try:
                await client.infer(pairs[0][0], pairs[0][1], f"{camera}-untrained")
            except NoModel as exc:
                return results, exc
            return results, None
        finally:
            await client.close()

    (normal_10, normal_20, abnormal), missing = asyncio.run(run())
    scorer = load_scorer(str(path))
    for result in (normal_10, normal_20, abnormal):
        assert result.threshold == pytest.approx(scorer.info.threshold)
        assert result.window == scorer.info.window == 5
        assert (result.rows, result.cols) == (8, 12) and result.cells.shape == (96,)
        assert result.score == pytest.approx(float(result.cells.max()))
    assert normal_10.score < normal_10.threshold and normal_20.score < normal_20.threshold
    assert abnormal.score > 2 * abnormal.threshold
    assert abnormal.score > 3 * max(normal_10.score, normal_20.score)
    # Triton (OpenCV 4.10, numpy 1.26) agrees with the application-side scorer
    local, _ = scorer.score_pair(decode_gray(frame(stack, "04", 99), scorer.config),
                                 decode_gray(frame(stack, "04", 100), scorer.config))
    assert abnormal.score == pytest.approx(local, rel=0.05)
    assert isinstance(missing, NoModel) and "no_model" in str(missing)


def test_the_stage_emits_one_anomaly_event_when_the_cart_comes(
        stack: Settings, camera_model: tuple[str, Path]) -> None:
    camera, _ = camera_model
    topology = Topology.model_validate({
        "sites": [SITE],
        "cameras": [{"id": camera, "site": SITE["id"], "source": "ped2", "fps": 10,
                     "zones": [{"id": "walkway", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                                "site_zone": "plaza"}]}]})
    agent = AnomalyAgent(stack, topology, config=AnomalySettings(min_frames=3,
                                                                 cooldown_s=1000.0))

    async def run() -> list[tuple[int, list[VideoEvent]]]:
        out = []
        try:
            for i in range(0, 60):
                headers = FrameHeaders(camera_id=camera, seq=i, capture_ts=1.8e9 + i / 10,
                                       width=360, height=240).to_headers()
                events = await agent.handle(camera.encode(), frame(stack, "04", i), headers)
                out.append((i, events))
            # a redelivered frame is skipped, not scored twice
            out.append((59, await agent.handle(camera.encode(), frame(stack, "04", 59),
                                               headers)))
        finally:
            await agent.close()
        return out

    results = asyncio.run(run())
    fired = [(i, e) for i, events in results for e in events]
    assert len(fired) == 1, [(i, e.attributes) for i, e in fired]
    index, event = fired[0]
    assert 30 < index < 50  # abnormal from frame 30: a few frames of smoothing later
    assert event.kind == "anomaly" and event.camera_id == camera
    assert event.event_id == f"{camera}:walkway:anomaly:{index}"
    assert (event.zone_id, event.site_zone_id, event.site_id) == ("walkway", "plaza",
                                                                   SITE["id"])
    score, threshold = event.attributes["score"], event.attributes["threshold"]
    assert isinstance(score, float) and isinstance(threshold, float)
    assert score > threshold > 0 and 0.5 < event.score < 1.0
    assert event.attributes["frames_above"] == 3
    assert event.start_ts is not None and event.start_ts < event.ts
    assert 0 <= event.box.x1 < event.box.x2 <= 1 and 0 <= event.box.y1 < event.box.y2 <= 1
    assert agent.cameras[camera].stats["scored"] == 59  # the first frame has no pair
    labels = load_labels(ped2(stack) / "frame_labels.csv")
    assert clip_labels(labels, "04", 180)[index] == 1
    assert np.isfinite(score)

"""The track stage on the real Kafka + Triton: PETS frames → detections → tracks with ids
that stay on the same people, stale frames skipped, bad messages dead-lettered, and
tracker state that survives a worker restart (Faust table changelog); each camera's newest
tracks written to Redis for the console."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pytest
import redis.asyncio as aioredis
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from argus.kafka import make_producer
from argus.settings import REPO_ROOT, Settings
from argus.stores.latest_tracks import EVERY_S, CameraTracks, read_latest
from pipelines.stages.track.tracker import iou_matrix
from schemas import DeadLetter, FrameHeaders, Tracks
from tests import conftest
from tests.conftest import metric_value, scrape
from tests.integration.test_detect_stage import pets_frames
from tests.kafka_utils import consume, consume_until
from tools import stack as embedded

pytestmark = pytest.mark.integration

W, H, GT_SCALE = 480, 360, 0.625


def gt_boxes(settings: Settings, frame_no: int) -> dict[int, np.ndarray]:
    """Ground-truth person boxes of one PETS frame (1-based), normalised x1, y1, x2, y2."""
    out = {}
    for row in (settings.shared / "data/pets09_s2l1/gt_frames_001_300.txt").read_text().split():
        f, pid, x, y, w, h, conf = (float(v) for v in row.split(",")[:7])
        if int(f) == frame_no and conf != 0:
            out[int(pid)] = np.array([x, y, x + w, y + h]) * GT_SCALE / [W, H, W, H]
    return out


def send_frames(settings: Settings, camera: str, jpegs: list[bytes], seqs: list[int],
                base_ts: float) -> None:
    """Frames ``seqs`` captured 0.1 s apart, the first of them at ``base_ts``."""
    producer = make_producer(settings)
    for seq, jpeg in zip(seqs, jpegs, strict=True):
        meta = FrameHeaders(camera_id=camera, seq=seq, capture_ts=base_ts + (seq - seqs[0]) * 0.1,
                            width=W, height=H)
        producer.send(settings.topic("frames.raw"), key=camera.encode(), value=jpeg,
                      headers=meta.to_headers())
    producer.flush()
    producer.close()


def tracks_by_seq(settings: Settings, camera: str, seqs: set[int], timeout_s: float = 90,
                  ) -> dict[int, list[Tracks]]:
    """The ``tracks`` messages of ``camera`` for ``seqs`` (waits until every seq arrived;
    other tests publish here too, bad messages included)."""
    def seq(record: ConsumerRecord) -> int | None:
        try:
            return Tracks.model_validate_json(record.value).seq
        except ValidationError:
            return None

    def ours(record: ConsumerRecord) -> bool:
        return record.key == camera.encode() and seq(record) in seqs

    def every_seq(records: list[ConsumerRecord]) -> bool:
        return seqs <= {seq(r) for r in records}

    found: dict[int, list[Tracks]] = defaultdict(list)
    for record in consume_until(settings, "tracks", every_seq, timeout_s, where=ours):
        message = Tracks.model_validate_json(record.value)
        found[message.seq].append(message)
    return found


def gt_to_track_ids(messages: dict[int, Tracks], settings: Settings, first_frame: int,
                    ) -> dict[int, set[int]]:
    """For each ground-truth person, the confirmed track ids that covered them (IoU >= 0.5);
    ``first_frame`` is the PETS frame number (1-based) of seq 0."""
    covered: dict[int, set[int]] = defaultdict(set)
    for seq, message in messages.items():
        truth = gt_boxes(settings, first_frame + seq)
        tracks = message.confirmed()
        if not truth or not tracks:
            continue
        boxes = np.array([[t.box.x1, t.box.y1, t.box.x2, t.box.y2] for t in tracks])
        iou = iou_matrix(np.array(list(truth.values())), boxes)
        for row, pid in enumerate(truth):
            best = int(np.argmax(iou[row]))
            if iou[row, best] >= 0.5:
                covered[pid].add(tracks[best].track_id)
    return covered


async def newest_tracks(settings: Settings, camera: str) -> CameraTracks | None:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        return await read_latest(client, camera)
    finally:
        await client.aclose()


def test_frames_become_tracks_with_stable_ids(stack: Settings, worker: int) -> None:
    jpegs = pets_frames(stack, 20)
    seqs = list(range(5000, 5020))
    # 30 s after any other test's cam-test frames: the tracker drops their tracks (a gap
    # far longer than max_lost frames) and starts afresh, as for a camera back from an outage
    base_ts = time.time() + 30
    send_frames(stack, "cam-test", jpegs, seqs, base_ts)
    found = tracks_by_seq(stack, "cam-test", set(seqs))
    assert sorted(found) == seqs
    messages = {seq - 5000: found[seq][0] for seq in seqs}
    first = messages[0]
    assert (first.width, first.height) == (W, H)
    assert {t.state for t in first.tracks} == {"tentative"}
    people = gt_boxes(stack, 20)
    confirmed = [t for t in messages[19].confirmed() if t.class_name == "person"]
    assert len(people) - 1 <= len(confirmed) <= len(people) + 2, (len(confirmed), people)
    assert {"car"} <= {t.class_name for t in messages[19].confirmed()}  # the parked cars
    covered = gt_to_track_ids(messages, stack, first_frame=1)
    assert len(covered) >= len(people) - 1
    assert all(len(ids) == 1 for ids in covered.values()), covered  # no identity switch
    walkers = [t for t in confirmed if t.age >= 10]
    assert walkers and all(t.first_seen < t.last_seen == messages[19].capture_ts
                           for t in walkers)
    assert any(abs(t.velocity.vx) + abs(t.velocity.vy) > 0.005 for t in walkers)

    # a late duplicate of an old frame is skipped (no second message); the stage goes on.
    # First wait out the camera wall's throttle: the 20 frames may all have been tracked
    # within EVERY_S of the first (tentative-only) write, so only frame 5020 is sure to be
    # written to Redis (checked below)
    time.sleep(EVERY_S + 0.2)
    send_frames(stack, "cam-test", [jpegs[3]], [5003], base_ts + 0.3)
    send_frames(stack, "cam-test", [jpegs[19]], [5020], base_ts + 2.0)
    again = tracks_by_seq(stack, "cam-test", {5003, 5020})
    assert len(again[5003]) == 1 and len(again[5020]) == 1
    metrics = scrape(worker)
    assert metric_value(metrics, "argus_stage_messages_out_total", stage="track") >= 21
    assert metric_value(metrics, "argus_stage_messages_in_total", stage="track") >= 22
    # the camera's newest tracks are in Redis for the console's camera wall (throttled)
    latest = asyncio.run(newest_tracks(stack, "cam-test"))
    assert latest is not None and 5000 <= latest.seq <= 5020
    assert abs(latest.written - time.time()) < 60
    assert {"person", "car"} <= {t.cls for t in latest.tracks if t.state == "confirmed"}


def test_bad_detections_are_dead_lettered(stack: Settings, worker: int) -> None:
    producer = make_producer(stack)
    producer.send(stack.topic("detections"), key=b"cam-test", value=b'{"camera_id": 7}')
    producer.flush()
    ours = [DeadLetter.model_validate_json(r.value) for r in consume(
        stack, "dlq", 1, 30, where=lambda r: DeadLetter.model_validate_json(r.value).stage
        == "track")]
    assert ours and ours[0].reason == "schema"
    assert ours[0].payload() == b'{"camera_id": 7}'


@pytest.fixture()
def own_worker(stack: Settings) -> Iterator[tuple[Settings, list[subprocess.Popen[bytes]]]]:
    """A worker on topics of its own, which the test may restart."""
    settings = stack.model_copy(update={"topic_prefix": f"r{uuid.uuid4().hex[:8]}.",
                                        "app_id": f"argus-restart-{uuid.uuid4().hex[:8]}"})
    procs: list[subprocess.Popen[bytes]] = []
    with embedded.own_topics(settings):
        yield settings, procs
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    shutil.rmtree(REPO_ROOT / f"{settings.app_id}-data", ignore_errors=True)  # faust's datadir


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    return conftest.start_worker(settings)[0]


def test_ids_survive_a_worker_restart(
        own_worker: tuple[Settings, list[subprocess.Popen[bytes]]]) -> None:
    """The state is written at most once a second of capture time (1.0 s default): frames
    0-15 span 1.5 s, so the restarted worker restores the state of frame 10 and predicts
    over the five frames it missed; the same people keep their ids."""
    settings, procs = own_worker
    log_path = settings.stack_dir / f"test-worker-{settings.app_id}.log"
    jpegs = pets_frames(settings, 24)
    base_ts = time.time()
    procs.append(start_worker(settings))
    send_frames(settings, "cam-test", jpegs[:16], list(range(16)), base_ts)
    before = tracks_by_seq(settings, "cam-test", set(range(16)))
    assert len(before) == 16, log_path.read_text()[-3000:]
    procs[0].terminate()
    try:
        procs[0].wait(30)
    except subprocess.TimeoutExpired:  # a worker stuck on shutdown (faust's wait_empty on
        procs[0].kill()                # an in-flight message): a crash must keep ids too
        procs[0].wait(10)
    procs.append(start_worker(settings))
    send_frames(settings, "cam-test", jpegs[16:], list(range(16, 24)), base_ts + 1.6)
    after = tracks_by_seq(settings, "cam-test", set(range(16, 24)))
    assert len(after) == 8, log_path.read_text()[-3000:]
    ids_before = gt_to_track_ids({s: m[0] for s, m in before.items() if s >= 8}, settings, 1)
    ids_after = gt_to_track_ids({s: m[0] for s, m in after.items()}, settings, 1)
    common = set(ids_before) & set(ids_after)
    assert len(common) >= 2
    for pid in common:  # the same people keep the same ids across the restart
        assert ids_before[pid] == ids_after[pid], (pid, ids_before, ids_after)

"""The `--workers N` pieces that need no process: the metrics merge and the ready board.

Expected values are hand arithmetic on two small expositions written here (in the format
and with the names metrics.py renders), not the merge's own output.
"""

from __future__ import annotations

import os

from reference_server.metrics_merge import merge_expositions
from reference_server.worker import ReadyBoard

WORKER_0 = """\
# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="mlp",version="1"} 7
# HELP nv_inference_request_failure Number of failed inference requests, by reason
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="mlp",version="1",reason="REJECTED"} 2
nv_inference_request_failure{model="mlp",version="1",reason="CANCELED"} 0
# HELP nv_inference_batch_size Executed batch sizes (rows)
# TYPE nv_inference_batch_size histogram
nv_inference_batch_size_bucket{model="mlp",version="1",le="1.0"} 3
nv_inference_batch_size_bucket{model="mlp",version="1",le="+Inf"} 4
nv_inference_batch_size_sum{model="mlp",version="1"} 7
nv_inference_batch_size_count{model="mlp",version="1"} 4
# HELP nv_inference_pending_request_count Instantaneous number of pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="mlp",version="1"} 1
# HELP reference_server_inflight_seconds_total Integral of the in-flight count over time
# TYPE reference_server_inflight_seconds_total counter
reference_server_inflight_seconds_total 0.25
# HELP reference_server_device_info Execution provider in use (1)
# TYPE reference_server_device_info gauge
reference_server_device_info{provider="CPUExecutionProvider",device="cpu",degraded="false"} 1
# HELP reference_server_event_loop_lag_seconds How late the last check ran
# TYPE reference_server_event_loop_lag_seconds gauge
reference_server_event_loop_lag_seconds 0.003
# HELP reference_server_degraded 1 while degraded
# TYPE reference_server_degraded gauge
reference_server_degraded 0
# HELP reference_server_ready 1 when ready
# TYPE reference_server_ready gauge
reference_server_ready 1
"""

WORKER_1 = (
    WORKER_0.replace('version="1"} 7\n', 'version="1"} 5\n', 1)
    .replace('reason="REJECTED"} 2', 'reason="REJECTED"} 1')
    .replace('reason="CANCELED"} 0', 'reason="CANCELED"} 4')
    .replace('le="1.0"} 3', 'le="1.0"} 2')
    .replace("inflight_seconds_total 0.25", "inflight_seconds_total 1.5")
    .replace("lag_seconds 0.003", "lag_seconds 0.041")
    .replace("reference_server_degraded 0", "reference_server_degraded 1")
    .replace("reference_server_ready 1", "reference_server_ready 0")
)


def _samples(text: str) -> dict[str, str]:
    return dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_counters_and_histograms_sum_gauges_by_their_rule() -> None:
    merged = _samples(merge_expositions([WORKER_0, WORKER_1]))
    assert merged == {
        'nv_inference_request_success{model="mlp",version="1"}': "12",  # 7 + 5
        'nv_inference_request_failure{model="mlp",version="1",reason="REJECTED"}': "3",  # 2 + 1
        'nv_inference_request_failure{model="mlp",version="1",reason="CANCELED"}': "4",  # 0 + 4
        'nv_inference_batch_size_bucket{model="mlp",version="1",le="1.0"}': "5",  # 3 + 2
        'nv_inference_batch_size_bucket{model="mlp",version="1",le="+Inf"}': "8",
        'nv_inference_batch_size_sum{model="mlp",version="1"}': "14",
        'nv_inference_batch_size_count{model="mlp",version="1"}': "8",
        'nv_inference_pending_request_count{model="mlp",version="1"}': "2",  # queues add up
        "reference_server_inflight_seconds_total": "1.75",  # 0.25 + 1.5
        # one device seen by both workers: 1, not 2
        'reference_server_device_info{provider="CPUExecutionProvider",device="cpu",'
        'degraded="false"}': "1",
        "reference_server_event_loop_lag_seconds": "0.041",  # max: the worker most behind
        "reference_server_degraded": "1",  # max: a worker is degraded
        "reference_server_ready": "0",  # min: ready only if every worker is
    }


def test_help_and_type_lines_are_kept_verbatim_once() -> None:
    merged = merge_expositions([WORKER_0, WORKER_1])
    comments = [line for line in merged.splitlines() if line.startswith("#")]
    assert comments == [line for line in WORKER_0.splitlines() if line.startswith("#")]
    assert "# TYPE reference_server_inflight_seconds_total counter" in comments  # no munging


def test_one_exposition_is_itself() -> None:
    assert merge_expositions([WORKER_0]) == WORKER_0


def test_the_ready_board_is_all_ready_only_when_every_byte_is() -> None:
    board = ReadyBoard.create(3)
    other = ReadyBoard(os.dup(board.fd))  # another mapping of the same file, as a worker's
    assert not other.all_ready()
    for i in range(3):
        board.set(i, True)
    assert other.all_ready()
    for i in range(3):  # any one worker not ready, seen from the other side
        other.set(i, False)
        assert not board.all_ready(), i
        other.set(i, True)
    assert board.all_ready()
    board.close()
    other.close()


def test_a_core_is_ready_only_while_its_peers_are(config) -> None:
    import asyncio

    from reference_server.core import InferenceCore

    async def check() -> tuple[bool, bool, bool]:
        core = InferenceCore(config)
        await core.start()
        board = ReadyBoard.create(2)
        core.peers_ready = board.all_ready
        board.set(0, True)
        alone = core.ready  # worker 1 not ready yet
        board.set(1, True)
        together = core.ready
        await core.stop(0)
        board.close()
        return alone, together, core.local_ready

    alone, together, after_stop = asyncio.run(check())
    assert (alone, together, after_stop) == (False, True, False)

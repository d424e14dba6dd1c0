"""Build the default model repository locally, with no download, in Triton's layout.

Why these models: load and chaos scenarios need (a) a *real* classifier whose answers can be
checked and whose two versions differ measurably in accuracy and latency, so A/B analysis has
a true effect to find, and (b) synthetic compute-heavy models whose cost is known, so
capacity numbers mean something. So:

  digits v1  LogisticRegression on scikit-learn's bundled 8x8 digits (fast, ~96 % accurate)
  digits v2  MLPClassifier (256, 256) on the same data (slower, ~98-99 % accurate)
  mlp        FP32 [-1,256] -> [-1,10], 256-1024-1024-10 dense ReLU net, seeded weights
  cnn        FP32 [-1,3,64,64] -> [-1,10], three conv/ReLU/max-pool stages + linear head

Layout written (Triton's):

  <root>/<model>/config.pbtxt         ModelConfig in protobuf text format
  <root>/<model>/<version>/model.onnx
  <root>/digits/test_set.npz          held-out X (float32 [n,64]) and y (int64 [n])
  <root>/digits/model_card.json       accuracy of each version on that test set

Every model's queue is bounded (Triton's `default_queue_policy`: `max_queue_size`, a timeout,
`timeout_action: REJECT`), sized by `QueueSizing` from a latency budget and a measured
capacity, so past capacity the server sheds load instead of queueing without limit.

Writes are atomic: the repository is built in a temporary sibling directory and moved into
place with `os.replace`, under a file lock so concurrent replicas starting together build it
once. Run as `python -m reference_server.models.build [DIR] [--if-missing]`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import itertools
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf import text_format
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2 as mc

logger = logging.getLogger(__name__)

DEFAULT_MODELS: tuple[str, ...] = ("digits", "mlp", "cnn")
# Bump when a model or a config.pbtxt changes: a repository stamped with another version is
# rebuilt by `ensure_repository`, so an old checkout's models never silently keep stale settings.
BUILD_VERSION = "3"
STAMP_FILE = ".build-version"
OPSET = 17
IR_VERSION = 8
DIGITS_SEED = 0


def _config(
    name: str,
    max_batch_size: int,
    inputs: list[tuple[str, int, list[int]]],
    outputs: list[tuple[str, int, list[int], list[int] | None]],
    *,
    delay_us: int,
    preferred: list[int],
    instances: int,
    queue: QueueSizing,
    versions_all: bool = False,
) -> mc.ModelConfig:
    """A ModelConfig; dims exclude the batch dimension, as Triton's do."""
    cfg = mc.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=max_batch_size)
    for in_name, dtype, dims in inputs:
        cfg.input.add(name=in_name, data_type=dtype, dims=dims)
    for out_name, dtype, dims, reshape in outputs:
        out = cfg.output.add(name=out_name, data_type=dtype, dims=dims)
        if reshape is not None:
            out.reshape.shape.extend(reshape)
    cfg.dynamic_batching.max_queue_delay_microseconds = delay_us
    cfg.dynamic_batching.preferred_batch_size.extend(preferred)
    policy = cfg.dynamic_batching.default_queue_policy
    policy.max_queue_size = queue.max_queue_size
    policy.default_timeout_microseconds = queue.budget_us
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    cfg.instance_group.add(count=instances, kind=mc.ModelInstanceGroup.KIND_AUTO)
    if versions_all:
        cfg.version_policy.all.SetInParent()
    return cfg


@dataclass(frozen=True, slots=True)
class QueueSizing:
    """A bounded queue from a latency budget and a measured capacity (Little's law).

    An accepted request waits at most about `budget_us` when at most budget x throughput
    requests are ahead of it: `max_queue_size = ceil(budget_s * capacity_rps)`. The timeout
    (`default_timeout_microseconds`, REJECT) is the same budget, a backstop for a slower host
    than the one measured; the size bound is what sheds at once, without a wait.
    """

    budget_us: int  # the queue's share of the latency SLO
    capacity_rps: float  # batch-1 requests per second the model serves (measured, see below)

    @property
    def max_queue_size(self) -> int:
        return math.ceil(self.budget_us / 1e6 * self.capacity_rps)


# Measured on the 2-core development host: batch-1 KServe binary requests over HTTP, one
# intra-op thread, the open-loop client on the same host, the answered rate while offered
# twice as much (benchmarks/bench_overload.py prints it as `capacity`). Budget: 100 ms of
# queueing, within the example scenarios' p99 SLOs (250-500 ms) with room for the service
# time itself. See the README section "Overload: bounded queues" to size for another host.
QUEUE_BUDGET_US = 100_000
QUEUE_SIZING = {
    "digits": QueueSizing(QUEUE_BUDGET_US, capacity_rps=6000),
    "mlp": QueueSizing(QUEUE_BUDGET_US, capacity_rps=5000),
    "cnn": QueueSizing(QUEUE_BUDGET_US, capacity_rps=2000),
}


def _write_model(model_dir: Path, cfg: mc.ModelConfig, versions: dict[str, bytes]) -> None:
    model_dir.mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(cfg))
    for version, blob in versions.items():
        (model_dir / version).mkdir()
        (model_dir / version / "model.onnx").write_bytes(blob)


def _finish(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="serving-harness"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def mlp_model(seed: int = 1, widths: tuple[int, ...] = (256, 1024, 1024, 10)) -> bytes:
    """Dense ReLU network with He-initialised seeded weights (Gemm + Relu per layer)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "input"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(widths) - 2
        out = "output" if last else f"h{i}"
        gemm_out = out if last else f"g{i}"
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", widths[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", widths[-1]])],
        inits,
    )
    return _finish(graph)


def cnn_model(
    seed: int = 2, channels: tuple[int, ...] = (3, 16, 32, 64), classes: int = 10
) -> bytes:
    """Conv(3x3)+ReLU+MaxPool(2) stages, global average pool, linear head; seeded weights."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "input"
    for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        fan_in = c_in * 9
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(c_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"cw{i}"), numpy_helper.from_array(b, f"cb{i}")]
        nodes += [
            helper.make_node("Conv", [current, f"cw{i}", f"cb{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
            helper.make_node("MaxPool", [f"r{i}"], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]),
        ]
        current = f"p{i}"
    w = (rng.standard_normal((channels[-1], classes)) * np.sqrt(1.0 / channels[-1])).astype(
        np.float32
    )
    inits += [
        numpy_helper.from_array(w, "fw"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "fb"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fw", "fb"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    return _finish(graph)


def digits_models(seed: int = DIGITS_SEED) -> tuple[dict[str, bytes], dict[str, object]]:
    """Train v1 (logistic regression) and v2 (MLP) on sklearn's bundled digits; export ONNX.

    Returns ({version: onnx bytes}, {"X_test", "y_test", "accuracy": {version: float}}).
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y.astype(np.int64), test_size=0.25, random_state=seed, stratify=y
    )
    estimators = {
        "1": LogisticRegression(max_iter=2000),
        "2": MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=300, random_state=seed),
    }
    blobs: dict[str, bytes] = {}
    accuracy: dict[str, float] = {}
    for version, est in estimators.items():
        # One BLAS thread: tiny matrices, and on a busy machine a thread pool per core
        # makes training 10-100x slower than a single thread.
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(x_train, y_train)
        accuracy[version] = float(est.score(x_test, y_test))
        onx = convert_sklearn(
            est,
            initial_types=[("input", FloatTensorType([None, 64]))],
            options={id(est): {"zipmap": False}},
            target_opset={"": OPSET, "ai.onnx.ml": 3},
        )
        blobs[version] = onx.SerializeToString()
    return blobs, {"X_test": x_test, "y_test": y_test, "accuracy": accuracy}


def _build_digits(root: Path) -> None:
    blobs, data = digits_models()
    digits_cfg = _config(
        "digits",
        64,
        [("input", mc.TYPE_FP32, [64])],
        # Triton cannot declare a per-row scalar output as dims []: it is dims [1] with
        # reshape [] (the model emits [batch]; clients see [batch, 1]), as Triton does.
        [("label", mc.TYPE_INT64, [1], []), ("probabilities", mc.TYPE_FP32, [10], None)],
        delay_us=500,
        preferred=[16, 32],
        instances=1,
        queue=QUEUE_SIZING["digits"],
        versions_all=True,
    )
    _write_model(root / "digits", digits_cfg, blobs)
    np.savez(root / "digits" / "test_set.npz", X=data["X_test"], y=data["y_test"])
    card = {
        "dataset": "sklearn.datasets.load_digits",
        "test_size": 0.25,
        "test_samples": len(data["y_test"]),
        "estimators": {"1": "LogisticRegression", "2": "MLPClassifier(256, 256)"},
        "accuracy": data["accuracy"],
    }
    (root / "digits" / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")


def _build_into(root: Path) -> None:
    fp32 = mc.TYPE_FP32
    _build_digits(root)
    # The queue delay only applies while the server is busy (an idle instance with spare
    # CPU dispatches at once; see reference_server.batcher), so it is tuned for saturation:
    # 2 ms instead of 0.5 ms made gRPC batches bigger and the saturated gRPC rate 15-34 %
    # higher (three interleaved A/B runs, pinned to one core), p50 at concurrency 1 alike.
    mlp_cfg = _config(
        "mlp",
        64,
        [("input", fp32, [256])],
        [("output", fp32, [10], None)],
        delay_us=2000,
        preferred=[16, 32, 64],
        instances=1,
        queue=QUEUE_SIZING["mlp"],
    )
    _write_model(root / "mlp", mlp_cfg, {"1": mlp_model()})
    # Measured, kept: single-thread ORT is ~5-10 % faster per sample at batch 2-8 than 16-32
    # in a tight loop, but in the server preferring 4/8 ran 12 % SLOWER (0.88x, A/B over
    # HTTP and gRPC; protocol work between batches evicts the caches and the per-batch
    # costs recur more often), and preferring only 32 was within noise (0.91-1.18x).
    cnn_cfg = _config(
        "cnn",
        32,
        [("input", fp32, [3, 64, 64])],
        [("output", fp32, [10], None)],
        delay_us=1000,
        preferred=[8, 16, 32],
        instances=1,
        queue=QUEUE_SIZING["cnn"],
    )
    _write_model(root / "cnn", cnn_cfg, {"1": cnn_model()})


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def repository_complete(path: Path) -> bool:
    """True when every default model is present and the build stamp is this version's."""
    for name in DEFAULT_MODELS:
        if not (Path(path) / name / "config.pbtxt").is_file():
            return False
        if not any(Path(path, name).glob("*/model.onnx")):
            return False
    if not (Path(path) / "digits" / "test_set.npz").is_file():
        return False
    stamp = Path(path) / STAMP_FILE
    return stamp.is_file() and stamp.read_text().strip() == BUILD_VERSION


def build_repository(path: Path) -> Path:
    """Build the default repository at `path` (replacing what is there); return the path."""
    path = Path(path).absolute()
    with _lock(path):
        return _build_locked(path)


def _build_locked(path: Path) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.build-", dir=path.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the repository is meant to be shared
        _build_into(tmp)
        (tmp / STAMP_FILE).write_text(BUILD_VERSION + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built model repository at %s (%s)", path, ", ".join(DEFAULT_MODELS))
    return path


def ensure_repository(path: Path) -> Path:
    """Build the default repository at `path` unless it is already complete."""
    path = Path(path).absolute()
    if repository_complete(path):
        return path
    with _lock(path):
        if repository_complete(path):  # another process built it while we waited
            return path
        return _build_locked(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", nargs="?", type=Path, default=None)
    parser.add_argument("--if-missing", action="store_true", help="keep a complete repository")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.directory is None:
        from reference_server.config import default_model_repository

        args.directory = default_model_repository()
    target = args.directory
    (ensure_repository if args.if_missing else build_repository)(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

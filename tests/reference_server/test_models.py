"""The locally built default models: layout, configs, real accuracy, atomic (re)builds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from reference_server.models.build import (
    DEFAULT_MODELS,
    build_repository,
    ensure_repository,
    main,
    repository_complete,
)
from reference_server.repository import load_config, scan_repository


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_layout_and_configs(model_repository: Path) -> None:
    models = scan_repository(model_repository)
    assert set(DEFAULT_MODELS) <= set(models)
    assert models["digits"].versions == ("1", "2")  # version_policy: all
    for name in DEFAULT_MODELS:
        cfg = load_config(model_repository / name / "config.pbtxt")
        assert cfg.platform == "onnxruntime_onnx"
        assert cfg.max_batch_size > 1
        assert cfg.dynamic_batching.max_queue_delay_microseconds > 0
        assert list(cfg.dynamic_batching.preferred_batch_size)
        assert cfg.instance_group[0].count >= 1
    mlp = models["mlp"]
    assert [(t.name, t.datatype, t.dims) for t in mlp.inputs] == [("input", "FP32", (256,))]
    assert [(t.name, t.dims) for t in mlp.outputs] == [("output", (10,))]
    cnn = models["cnn"]
    assert cnn.inputs[0].dims == (3, 64, 64) and cnn.outputs[0].dims == (10,)


@pytest.mark.parametrize(
    ("model", "shape", "outputs"),
    [
        ("mlp", (4, 256), {"output": (4, 10)}),
        ("cnn", (2, 3, 64, 64), {"output": (2, 10)}),
        ("digits", (5, 64), {"label": (5,), "probabilities": (5, 10)}),
    ],
)
def test_onnx_graphs_run(model_repository: Path, model: str, shape: tuple, outputs: dict) -> None:
    session = _session(model_repository / model / "1" / "model.onnx")
    got = session.run(None, {"input": np.random.default_rng(0).random(shape, np.float32)})
    names = [o.name for o in session.get_outputs()]
    assert {n: a.shape for n, a in zip(names, got, strict=True)} == outputs
    assert all(np.isfinite(a).all() for a in got)


def test_digits_versions_are_real_and_different(model_repository: Path) -> None:
    data = np.load(model_repository / "digits" / "test_set.npz")
    x, y = data["X"], data["y"]
    assert x.dtype == np.float32 and x.shape[1] == 64 and len(x) == len(y) > 300
    accuracy = {}
    for version in ("1", "2"):
        label, probs = _session(model_repository / "digits" / version / "model.onnx").run(
            None, {"input": x}
        )
        assert label.dtype == np.int64 and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
        accuracy[version] = float((label == y).mean())
    assert 0.9 < accuracy["1"] < accuracy["2"]  # v2 (MLP) is better than v1 (logistic)
    card = json.loads((model_repository / "digits" / "model_card.json").read_text())
    assert card["accuracy"] == pytest.approx(accuracy, abs=1e-9)


def test_ensure_builds_once_and_build_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    assert not repository_complete(target)
    ensure_repository(target)
    assert repository_complete(target)
    marker = target / "mlp" / "config.pbtxt"
    before = marker.stat().st_mtime_ns
    ensure_repository(target)  # complete: untouched
    assert marker.stat().st_mtime_ns == before
    (target / "stale.txt").write_text("old")
    build_repository(target)  # full rebuild replaces the directory
    assert repository_complete(target) and not (target / "stale.txt").exists()
    leftovers = [
        p.name for p in tmp_path.iterdir() if p.name != "repo" and not p.name.endswith(".lock")
    ]
    assert leftovers == []  # no temporary or old directories left behind


def test_cli_if_missing_keeps_a_complete_repository(tmp_path: Path, model_repository: Path) -> None:
    target = tmp_path / "cli-repo"
    shutil.copytree(model_repository, target)
    before = (target / "cnn" / "config.pbtxt").stat().st_mtime_ns
    assert main([str(target), "--if-missing"]) == 0
    assert (target / "cnn" / "config.pbtxt").stat().st_mtime_ns == before


def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    """Replicas started together on a missing default repository: one builds, one waits."""
    target = tmp_path / "shared-repo"
    cmd = [sys.executable, "-m", "reference_server.models.build", str(target), "--if-missing"]
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("built model repository" in out for out in outputs) == 1, outputs
    assert repository_complete(target)

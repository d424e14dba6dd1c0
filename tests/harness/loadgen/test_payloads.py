"""Request payloads (no Locust): tensors from metadata or a dataset, wire bodies, answer checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.loadgen.payloads import (
    TensorSpec,
    count_correct,
    dataset_samples,
    kserve_json_body,
    kserve_path,
    label_from_kserve,
    label_from_tfserving,
    random_samples,
    specs_from_metadata,
    tfserving_body,
    tfserving_input_specs,
    tfserving_path,
)


def test_random_samples_follow_metadata_and_are_seeded() -> None:
    meta = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]},
                       {"name": "mask", "datatype": "INT64", "shape": [-1, 3]}]}  # fmt: skip
    specs = specs_from_metadata(meta)
    a, b = (
        random_samples(specs, 4, seed=3, batch_size=2),
        random_samples(specs, 4, seed=3, batch_size=2),
    )
    assert a[0].inputs["input"].shape == (2, 64) and a[0].inputs["input"].dtype == np.float32
    assert a[0].inputs["mask"].dtype == np.int64
    assert all(
        np.array_equal(x.inputs["input"], y.inputs["input"]) for x, y in zip(a, b, strict=True)
    )
    with pytest.raises(ValueError):
        specs_from_metadata({"outputs": []})


def test_kserve_body_and_answer_round_trip(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", X=np.arange(12, dtype=np.float32).reshape(6, 2), y=np.arange(6))
    samples = dataset_samples(tmp_path / "d.npz", "input", batch_size=4)
    assert len(samples) == 1 and samples[0].labels.tolist() == [0, 1, 2, 3]
    body = json.loads(kserve_json_body(samples[0]))
    assert body["inputs"][0] == {"name": "input", "shape": [4, 2], "datatype": "FP32",
                                 "data": [float(v) for v in range(8)]}  # fmt: skip
    answer = {"outputs": [{"name": "probabilities", "shape": [4, 2], "datatype": "FP32",
                           "data": [0.1, 0.9] * 4},
                          {"name": "label", "shape": [4, 1], "datatype": "INT64",
                           "data": [0, 1, 2, 0]}]}  # fmt: skip
    predicted = label_from_kserve(json.dumps(answer))
    assert count_correct(samples[0].labels, predicted) == (4, 3)
    no_label = {"outputs": [{"name": "output", "shape": [2, 3], "datatype": "FP32",
                             "data": [0, 5, 1, 9, 0, 0]}]}  # fmt: skip
    assert label_from_kserve(json.dumps(no_label)).tolist() == [1, 0]
    assert count_correct(None, predicted) == (0, 0)
    assert kserve_path("digits", "2") == "/v2/models/digits/versions/2/infer"
    assert kserve_path("digits", None) == "/v2/models/digits/infer"


def test_tfserving_body_answers_and_metadata() -> None:
    sample = random_samples((TensorSpec("x", "FP32", (-1, 3)),), 1, seed=0, batch_size=2)[0]
    assert np.asarray(json.loads(tfserving_body(sample))["instances"]).shape == (2, 3)
    rows = {
        "predictions": [{"label": 3, "probabilities": [0.1]}, {"label": 7, "probabilities": [0.2]}]
    }
    assert label_from_tfserving(json.dumps(rows)).tolist() == [3, 7]
    assert label_from_tfserving(json.dumps({"predictions": [[0.1, 0.8, 0.1]]})).tolist() == [1]
    assert tfserving_path("digits", None) == "/v1/models/digits:predict"
    meta = {"metadata": {"signature_def": {"signature_def": {"serving_default": {"inputs": {
        "input": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "64"}]}}
    }}}}}}  # fmt: skip
    assert tfserving_input_specs(meta) == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]

"""Repository parsing with Triton's ModelConfig, version policies, errors naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from reference_server.errors import InvalidInput, ModelLoadError
from reference_server.repository import (
    check_inputs,
    check_outputs,
    load_model,
    scan_repository,
    select_versions,
    shape_outputs,
)

CONFIG = """
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
input {{ name: "input" data_type: TYPE_FP32 dims: [ 256 ] }}
output {{ name: "output" data_type: TYPE_FP32 dims: [ 10 ] }}
{policy}
"""


def _model_dir(root: Path, src: Path, versions: tuple[int, ...], policy: str = "") -> Path:
    directory = root / "m"
    directory.mkdir(parents=True)
    (directory / "config.pbtxt").write_text(CONFIG.format(policy=policy))
    for v in versions:
        (directory / str(v)).mkdir()
        shutil.copy(src, directory / str(v) / "model.onnx")
    return directory


@pytest.fixture
def mlp_file(model_repository: Path) -> Path:
    return model_repository / "mlp" / "1" / "model.onnx"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", ("10",)),  # Triton's default: latest 1, numerically (10 > 9 > 2)
        ("version_policy { latest { num_versions: 2 } }", ("9", "10")),
        ("version_policy { all { } }", ("1", "2", "9", "10")),
        ("version_policy { specific { versions: [ 2, 9 ] } }", ("2", "9")),
    ],
)
def test_version_policies(tmp_path: Path, mlp_file: Path, policy: str, expected: tuple) -> None:
    spec = load_model(_model_dir(tmp_path, mlp_file, (1, 2, 9, 10), policy))
    assert spec.versions == expected
    assert spec.available == ("1", "2", "9", "10")


def test_specific_version_missing_names_file(tmp_path: Path, mlp_file: Path) -> None:
    directory = _model_dir(tmp_path, mlp_file, (1,), "version_policy { specific { versions: 3 } }")
    with pytest.raises(ModelLoadError, match=r"config\.pbtxt.*\[.3.\]"):
        load_model(directory)


def test_version_dirs_without_model_file_are_ignored(tmp_path: Path, mlp_file: Path) -> None:
    directory = _model_dir(tmp_path, mlp_file, (1,))
    (directory / "7").mkdir()  # no model.onnx inside
    (directory / "notes").mkdir()
    assert load_model(directory).available == ("1",)


def test_select_versions_latest_zero_rejected() -> None:
    policy = mc.ModelVersionPolicy()
    policy.latest.num_versions = 0
    with pytest.raises(ModelLoadError, match="num_versions"):
        select_versions(policy, ("1",))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('name: "m" max_batch_size: 8 input { name: ', "invalid model config"),
        ('name: "m" no_such_field: 1', "invalid model config"),
        ('name: "other" input { name: "a" dims: 1 } output { name: "b" dims: 1 }', "match"),
        ('platform: "tensorflow_savedmodel" input { name: "a" dims: 1 }', "platform"),
        ('name: "m" output { name: "b" data_type: TYPE_FP32 dims: 1 }', "at least one input"),
        (
            'input { name: "a" data_type: TYPE_FP32 dims: [0] } '
            'output { name: "b" data_type: TYPE_FP32 dims: 1 }',
            "dims",
        ),
    ],
)
def test_config_errors_name_the_file(
    tmp_path: Path, mlp_file: Path, text: str, problem: str
) -> None:
    directory = _model_dir(tmp_path, mlp_file, (1,))
    (directory / "config.pbtxt").write_text(text)
    with pytest.raises(ModelLoadError) as info:
        load_model(directory)
    assert str(directory / "config.pbtxt") in str(info.value)
    assert problem in str(info.value)


def test_no_versions_and_empty_repository(tmp_path: Path, mlp_file: Path) -> None:
    directory = _model_dir(tmp_path, mlp_file, ())
    with pytest.raises(ModelLoadError, match="no version directory"):
        load_model(directory)
    with pytest.raises(ModelLoadError, match="does not exist"):
        scan_repository(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no model directories"):
        scan_repository(tmp_path / "empty")


def test_request_validation_against_config(model_repository: Path) -> None:
    spec = load_model(model_repository / "digits")
    x = np.zeros((3, 64), np.float32)
    feeds, rows = check_inputs(spec, {"input": x})
    assert rows == 3 and feeds["input"] is x
    with pytest.raises(InvalidInput, match=r"datatype FP64 .* FP32"):
        check_inputs(spec, {"input": x.astype(np.float64)})
    with pytest.raises(InvalidInput, match=r"shape \[3, 63\] .* \[-1, 64\]"):
        check_inputs(spec, {"input": x[:, :63]})
    with pytest.raises(InvalidInput, match="batch size 65"):
        check_inputs(spec, {"input": np.zeros((65, 64), np.float32)})
    with pytest.raises(InvalidInput, match="unexpected input 'wrong'"):
        check_inputs(spec, {"wrong": x})
    with pytest.raises(InvalidInput, match="got 2 input"):
        check_inputs(spec, {"input": x, "extra": x})
    with pytest.raises(InvalidInput, match="unknown output 'nope'"):
        check_outputs(spec, ("nope",))
    # Triton's reshape: the model's [batch] label is served as [batch, 1]
    out = shape_outputs(spec, {"label": np.arange(3), "probabilities": np.zeros((3, 10))}, 3, None)
    assert out["label"].shape == (3, 1) and out["probabilities"].shape == (3, 10)
    assert list(shape_outputs(spec, out, 3, ("probabilities",))) == ["probabilities"]
    meta = spec.metadata()
    assert meta["outputs"][0] == {"name": "label", "datatype": "INT64", "shape": [-1, 1]}
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]


def test_config_naming_a_tensor_the_model_lacks(tmp_path: Path, mlp_file: Path) -> None:
    from reference_server.repository import check_model_io

    spec = load_model(_model_dir(tmp_path, mlp_file, (1,)))
    check_model_io(spec, mlp_file, ("input",), ("output",))
    with pytest.raises(ModelLoadError, match=r"declares output 'output' .* logits"):
        check_model_io(spec, mlp_file, ("input",), ("logits",))


def test_batch_policy_and_warmup_from_config(model_repository: Path) -> None:
    from reference_server.repository import batch_policy, warmup_feeds

    spec = load_model(model_repository / "mlp")
    policy = batch_policy(spec)
    assert policy.max_batch_size == 64 and policy.max_queue_delay_ns == 2_000_000
    assert policy.preferred == (16, 32, 64)
    feeds = warmup_feeds(spec)
    assert feeds["input"].shape == (1, 256) and feeds["input"].dtype == np.float32
    spec.config.ClearField("dynamic_batching")  # no dynamic batching: one request per run
    assert batch_policy(spec).max_batch_size == 0


def test_queue_policy_from_config(model_repository: Path) -> None:
    from reference_server.repository import batch_policy

    spec = load_model(model_repository / "mlp")
    queue = spec.config.dynamic_batching.default_queue_policy
    queue.max_queue_size = 100
    queue.default_timeout_microseconds = 5000
    policy = batch_policy(spec)
    assert policy.max_queue_size == 100 and policy.queue_timeout_ns == 5_000_000
    queue.timeout_action = mc.ModelQueuePolicy.DELAY  # DELAY never rejects
    assert batch_policy(spec).queue_timeout_ns == 0

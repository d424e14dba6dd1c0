"""Triton-layout model repository: discovery, config parsing, version policies.

Why Triton's layout and Triton's own `ModelConfig` message (shipped in tritonclient): a model
directory that works here works in a real Triton server and vice versa, and perf_analyzer /
model_analyzer read the very same config back from `/v2/models/{m}/config`. The config is
parsed with protobuf's text format, never a hand-rolled parser; every problem is raised as
a `ModelLoadError` naming the file and what is wrong with it.

  <root>/<model>/config.pbtxt
  <root>/<model>/<version>/model.onnx     version = a positive integer directory name

The same module enforces the config on requests (`check_inputs`, `check_outputs`,
`shape_outputs`): names, datatypes, shapes with -1 wildcards, max_batch_size and Triton's
`reshape`, with messages that name the input and what was expected. Pure functions, no
ONNX Runtime here (see runtime.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from reference_server.batcher import BatchPolicy
from reference_server.errors import InvalidInput, ModelLoadError
from reference_server.tensors import CONFIG_TYPE_TO_DATATYPE, DATATYPE_TO_NUMPY, datatype_of

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.pbtxt"
SUPPORTED_PLATFORMS = ("onnxruntime_onnx",)
SUPPORTED_BACKENDS = ("onnxruntime",)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output as the server enforces it (dims exclude the batch dimension)."""

    name: str
    datatype: str  # KServe name, e.g. "FP32"
    dims: tuple[int, ...]  # config dims, -1 = any size
    reshape: tuple[int, ...] | None  # Triton's reshape: the model's own dims, if different
    dtype: np.dtype

    def metadata(self, batched: bool) -> dict:
        """KServe v2 tensor metadata; the batch dimension shows as -1."""
        shape = [-1, *self.dims] if batched else list(self.dims)
        return {"name": self.name, "datatype": self.datatype, "shape": shape}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model directory: its parsed config and the versions its policy selects."""

    name: str
    directory: Path
    config: mc.ModelConfig
    versions: tuple[str, ...]  # selected by the version policy, ascending
    available: tuple[str, ...]  # every version directory holding the model file
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_index: dict[str, TensorSpec]
    output_index: dict[str, TensorSpec]
    max_batch_size: int  # 0 = the model takes no batch dimension

    def metadata(self) -> dict:
        """KServe v2 model metadata (all loaded versions)."""
        batched = self.max_batch_size > 0
        return {
            "name": self.name,
            "versions": list(self.versions),
            "platform": self.config.platform or "onnxruntime_onnx",
            "inputs": [t.metadata(batched) for t in self.inputs],
            "outputs": [t.metadata(batched) for t in self.outputs],
        }

    def model_file(self, version: str) -> Path:
        filename = self.config.default_model_filename or "model.onnx"
        return self.directory / version / filename


def load_config(path: Path) -> mc.ModelConfig:
    """Parse one config.pbtxt into tritonclient's ModelConfig; ModelLoadError names the file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read model config: {exc.strerror}") from exc
    try:
        return text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as exc:
        raise ModelLoadError(f"{path}: invalid model config: {exc}") from exc


def _tensor_specs(path: Path, kind: str, items: list) -> tuple[TensorSpec, ...]:
    specs = []
    for item in items:
        type_name = mc.DataType.Name(item.data_type)
        datatype = CONFIG_TYPE_TO_DATATYPE.get(type_name)
        if datatype is None:
            raise ModelLoadError(f"{path}: {kind} '{item.name}': unsupported data_type {type_name}")
        if not item.name:
            raise ModelLoadError(f"{path}: {kind} without a name")
        if not item.dims or any(d < -1 or d == 0 for d in item.dims):
            raise ModelLoadError(
                f"{path}: {kind} '{item.name}': dims must be non-empty, each > 0 or -1, "
                f"got {list(item.dims)}"
            )
        reshape = tuple(item.reshape.shape) if item.HasField("reshape") else None
        dtype = DATATYPE_TO_NUMPY[datatype]
        specs.append(TensorSpec(item.name, datatype, tuple(item.dims), reshape, dtype))
    return tuple(specs)


def _check_config(path: Path, directory: Path, cfg: mc.ModelConfig) -> None:
    if cfg.name and cfg.name != directory.name:
        raise ModelLoadError(
            f"{path}: name '{cfg.name}' does not match its directory '{directory.name}'"
        )
    if cfg.platform and cfg.platform not in SUPPORTED_PLATFORMS:
        raise ModelLoadError(
            f"{path}: platform '{cfg.platform}' is not supported (only {SUPPORTED_PLATFORMS})"
        )
    if cfg.backend and cfg.backend not in SUPPORTED_BACKENDS:
        raise ModelLoadError(f"{path}: backend '{cfg.backend}' is not supported")
    if cfg.max_batch_size < 0:
        raise ModelLoadError(f"{path}: max_batch_size must be >= 0, got {cfg.max_batch_size}")
    if not cfg.input or not cfg.output:
        raise ModelLoadError(f"{path}: a model needs at least one input and one output")
    for group in cfg.instance_group:
        if group.count < 0:
            raise ModelLoadError(f"{path}: instance_group count must be >= 0")


def available_versions(directory: Path, filename: str = "model.onnx") -> tuple[str, ...]:
    """Integer-named subdirectories holding the model file, ascending."""
    found = [
        int(child.name)
        for child in directory.iterdir()
        if child.is_dir() and child.name.isdigit() and (child / filename).is_file()
    ]
    return tuple(str(v) for v in sorted(found))


def select_versions(
    policy: mc.ModelVersionPolicy, available: tuple[str, ...], *, path: Path | None = None
) -> tuple[str, ...]:
    """Apply Triton's version policy; the default is latest 1."""
    ordered = sorted(available, key=int)
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return tuple(ordered)
    if which == "specific":
        wanted = [str(v) for v in policy.specific.versions]
        missing = [v for v in wanted if v not in ordered]
        if missing:
            raise ModelLoadError(
                f"{path}: version_policy.specific names versions {missing} "
                f"that have no model file (available: {ordered})"
            )
        return tuple(sorted(set(wanted), key=int))
    count = policy.latest.num_versions if which == "latest" else 1
    if count < 1:
        raise ModelLoadError(f"{path}: version_policy.latest.num_versions must be >= 1")
    return tuple(ordered[-count:])


def load_model(directory: Path) -> ModelSpec:
    """Load one model directory (config + versions); ModelLoadError on any problem."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    cfg = load_config(path)
    _check_config(path, directory, cfg)
    if not cfg.name:
        cfg.name = directory.name
    if not cfg.platform and not cfg.backend:
        cfg.platform = "onnxruntime_onnx"
    filename = cfg.default_model_filename or "model.onnx"
    available = available_versions(directory, filename)
    if not available:
        raise ModelLoadError(f"{directory}: no version directory holds {filename}")
    versions = select_versions(cfg.version_policy, available, path=path)
    inputs = _tensor_specs(path, "input", list(cfg.input))
    outputs = _tensor_specs(path, "output", list(cfg.output))
    return ModelSpec(
        name=cfg.name,
        directory=directory,
        config=cfg,
        versions=versions,
        available=available,
        inputs=inputs,
        outputs=outputs,
        input_index={t.name: t for t in inputs},
        output_index={t.name: t for t in outputs},
        max_batch_size=int(cfg.max_batch_size),
    )


def scan_repository(root: Path) -> dict[str, ModelSpec]:
    """Every model directory (one holding config.pbtxt) under `root`, by name."""
    root = Path(root)
    if not root.is_dir():
        raise ModelLoadError(f"{root}: model repository directory does not exist")
    models = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and (child / CONFIG_FILE).is_file():
            spec = load_model(child)
            models[spec.name] = spec
            logger.debug("found model %s versions %s", spec.name, ",".join(spec.versions))
    if not models:
        raise ModelLoadError(f"{root}: no model directories (<model>/{CONFIG_FILE}) found")
    return models


def batch_policy(spec: ModelSpec) -> BatchPolicy:
    """Dynamic batching as configured; without `dynamic_batching`, one request per run.

    `default_queue_policy` is honoured as Triton does: `max_queue_size` (a full queue
    answers Unavailable) and `default_timeout_microseconds` with `timeout_action: REJECT`.
    """
    if not spec.config.HasField("dynamic_batching"):
        return BatchPolicy(max_batch_size=0)
    batching = spec.config.dynamic_batching
    queue = batching.default_queue_policy
    reject = queue.timeout_action == mc.ModelQueuePolicy.REJECT
    return BatchPolicy(
        max_batch_size=spec.max_batch_size,
        max_queue_delay_ns=int(batching.max_queue_delay_microseconds) * 1000,
        preferred=tuple(int(p) for p in batching.preferred_batch_size),
        max_queue_size=int(queue.max_queue_size),
        queue_timeout_ns=int(queue.default_timeout_microseconds) * 1000 if reject else 0,
    )


def warmup_feeds(spec: ModelSpec) -> dict[str, np.ndarray]:
    """One zero-filled row per input, in the model's own shape (-1 dims as 1)."""
    feeds = {}
    for tensor in spec.inputs:
        dims = tensor.reshape if tensor.reshape is not None else tensor.dims
        shape = [1 if d == -1 else d for d in dims]
        if spec.max_batch_size:
            shape.insert(0, 1)
        feeds[tensor.name] = np.zeros(shape, tensor.dtype)
    return feeds


def check_model_io(
    spec: ModelSpec, path: Path, inputs: tuple[str, ...], outputs: tuple[str, ...]
) -> None:
    """The config's inputs/outputs must exist in the model file (names as ONNX has them)."""
    for kind, declared, actual in (
        ("input", spec.input_index, inputs),
        ("output", spec.output_index, outputs),
    ):
        missing = [name for name in declared if name not in actual]
        if missing:
            raise ModelLoadError(
                f"{path}: config.pbtxt declares {kind} '{missing[0]}' that the model "
                f"does not have (model {kind}s: {', '.join(actual)})"
            )


def _dims_match(expected: tuple[int, ...], got: tuple[int, ...]) -> bool:
    if len(expected) != len(got):
        return False
    return all(e == -1 or e == g for e, g in zip(expected, got, strict=True))


def _check_one(spec: ModelSpec, tensor: TensorSpec, array: np.ndarray) -> int:
    """Validate one input array; return its row count (1 for a non-batching model)."""
    if array.dtype != tensor.dtype:
        raise InvalidInput(
            f"input '{tensor.name}' of model '{spec.name}': datatype {datatype_of(array)} "
            f"does not match the model's {tensor.datatype}"
        )
    shape = array.shape
    batched = spec.max_batch_size > 0
    item_shape = shape[1:] if batched else shape
    if item_shape != tensor.dims and (
        (batched and not shape) or not _dims_match(tensor.dims, item_shape)
    ):
        want = [-1, *tensor.dims] if batched else list(tensor.dims)
        raise InvalidInput(
            f"input '{tensor.name}' of model '{spec.name}': shape {list(shape)} does not "
            f"match the model's {want}"
        )
    if not batched:
        return 1
    rows = shape[0]
    if rows < 1 or rows > spec.max_batch_size:
        raise InvalidInput(
            f"input '{tensor.name}' of model '{spec.name}': batch size {rows} is outside "
            f"1..{spec.max_batch_size} (max_batch_size)"
        )
    return rows


def _names_mismatch(spec: ModelSpec, inputs: dict[str, np.ndarray]) -> None:
    expected = spec.input_index
    unknown = [n for n in inputs if n not in expected]
    missing = [n for n in expected if n not in inputs]
    if unknown or len(inputs) > len(expected):
        problem = f"unexpected input '{unknown[0]}'" if unknown else "too many inputs"
        raise InvalidInput(
            f"model '{spec.name}': {problem}; got {len(inputs)} input(s), expected "
            f"{len(expected)}: {', '.join(expected)}"
        )
    raise InvalidInput(f"model '{spec.name}': missing input '{missing[0]}'")


def check_inputs(spec: ModelSpec, inputs: dict[str, np.ndarray]) -> tuple[dict, int]:
    """Validate a request's inputs against the config; (feeds for the model, row count)."""
    expected = spec.input_index
    if inputs.keys() != expected.keys():
        _names_mismatch(spec, inputs)
    rows = -1
    feeds = {}
    for name, tensor in expected.items():
        array = inputs[name]
        n = _check_one(spec, tensor, array)
        if rows not in (-1, n):
            raise InvalidInput(f"model '{spec.name}': inputs disagree on the batch size")
        rows = n
        if tensor.reshape is not None:
            array = array.reshape((n, *tensor.reshape) if spec.max_batch_size else tensor.reshape)
        feeds[name] = array
    return feeds, rows


def check_outputs(spec: ModelSpec, requested: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Validate requested output names (None = all)."""
    if requested is None:
        return None
    for name in requested:
        if name not in spec.output_index:
            raise InvalidInput(
                f"model '{spec.name}': unknown output '{name}'; outputs: "
                f"{', '.join(spec.output_index)}"
            )
    return requested


def shape_outputs(
    spec: ModelSpec, outputs: dict[str, np.ndarray], rows: int, wanted: tuple[str, ...] | None
) -> dict[str, np.ndarray]:
    """Select the requested outputs and apply Triton's output reshape (model -> config dims)."""
    names = wanted if wanted is not None else tuple(spec.output_index)
    result = {}
    for name in names:
        array = outputs[name]
        tensor = spec.output_index[name]
        if tensor.reshape is not None:
            array = array.reshape((rows, *tensor.dims) if spec.max_batch_size else tensor.dims)
        result[name] = array
    return result

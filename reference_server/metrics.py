"""Prometheus metrics of one InferenceCore, named and meant as Triton names and means them.

Why rendered at scrape time from stats.py instead of incremented per request: the hot path
stays a few integer additions, the statistics extension and /metrics can never disagree,
and each core owns its own `CollectorRegistry` (never the process-global default one), so
several cores in one test process do not collide.

Triton's counters carry no `_total` suffix (`nv_inference_request_success`), which
prometheus_client's exposition would add, so `render` writes the text format itself.

  nv_inference_request_success                    counter  requests  {model, version}
  nv_inference_request_failure                    counter  requests  {model, version, reason}
      reason as Triton's: REJECTED (queue full / queue timeout), CANCELED (client left),
      BACKEND (model execution failed), OTHER; every reason is always present
  nv_inference_count / nv_inference_exec_count    counter  rows / batches
  nv_inference_request_duration_us               counter  end-to-end, success + failure
  nv_inference_queue_duration_us                 counter  waiting in the batcher queue
  nv_inference_compute_{input,infer,output}_duration_us  counter (per request, as Triton)
  nv_inference_pending_request_count             gauge    queue depth
  nv_inference_batch_size                        histogram executed batch sizes
  reference_server_inflight_requests             gauge    in flight now (a point sample)
  reference_server_inflight_seconds_total         counter  integral of the in-flight count over
      time, exact at each scrape: rate() of it is the time-averaged number in flight (Little's
      law), the metric the HPA scales on (deploy/k8s/monitoring/prometheus-adapter-rules.yaml)
  reference_server_inference_requests{protocol}  counter  http / grpc / tfserving
  reference_server_event_loop_lag_seconds        gauge    how late the loop's last check ran
  reference_server_overload_shed_requests_total  counter  refused while the loop was behind
      (overload.py; also in nv_inference_request_failure{reason="REJECTED"})
  reference_server_device_info{provider,device,degraded}  gauge = 1
  reference_server_degraded / reference_server_ready      gauge 0/1
  nv_gpu_utilization, nv_gpu_memory_{used,total}_bytes   gauge {gpu_uuid}, only on CUDA
  process_cpu_seconds_total, process_resident_memory_bytes, ...  this process (Linux /proc),
      prometheus_client's process collector: the dashboards' CPU and memory panels
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from reference_server.runtime import CUDA

if TYPE_CHECKING:
    from reference_server.core import InferenceCore

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# name, help, VersionStats -> value
_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests", "success"),
    ("nv_inference_count", "Number of inferences performed (batch rows)", "rows"),
    ("nv_inference_exec_count", "Number of model executions performed (batches)", "execs"),
    ("nv_inference_request_duration_us", "Cumulative inference request duration", "request"),
    ("nv_inference_queue_duration_us", "Cumulative inference queuing duration", "queue"),
    ("nv_inference_compute_input_duration_us", "Cumulative compute input duration", "input"),
    ("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration", "infer"),
    ("nv_inference_compute_output_duration_us", "Cumulative compute output duration", "output"),
)


def _values(s) -> dict[str, float]:  # s: VersionStats
    return {
        "success": s.success_count,
        "rows": s.inference_count,
        "execs": s.execution_count,
        "request": (s.success_ns + s.fail_ns) // 1000,
        "queue": s.queue_ns // 1000,
        "input": s.compute_input_ns // 1000,
        "infer": s.compute_infer_ns // 1000,
        "output": s.compute_output_ns // 1000,
    }


class InflightIntegral:
    """A count of requests in flight and its integral over time, in in-flight-seconds.

    Why: a gauge sampled at scrape time reads 0 almost always when requests are short, and a
    point sample of a Poisson-like count is noisy (sd = sqrt(mean)); the HPA needs the time
    average. The integral grows by count x elapsed at every change and is read exactly at any
    instant (the open interval since the last change included), so the increase between two
    scrapes divided by their distance is the mean number in flight between them.
    """

    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock_ns = clock_ns
        self.count = 0
        self._area_ns = 0  # in-flight x nanoseconds, up to `_since`
        self._since = clock_ns()

    def set(self, count: int) -> None:
        now = self._clock_ns()
        self._area_ns += self.count * (now - self._since)
        self._since = now
        self.count = count

    def seconds(self) -> float:
        """In-flight-seconds accumulated up to now."""
        return (self._area_ns + self.count * (self._clock_ns() - self._since)) / 1e9


class GpuProbe:
    """GPU utilisation and memory via pynvml, else nvidia-smi.

    The first read queries synchronously; later reads return the last values and, when
    they are older than `ttl_s`, refresh them in a background thread, so a scrape never
    blocks the event loop on a slow `nvidia-smi`. After one failure it stops trying.
    """

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._at: float | None = None
        self._rows: list[tuple[str, float, float, float]] = []
        self._broken = False
        self._refreshing = threading.Lock()

    def read(self) -> list[tuple[str, float, float, float]]:
        """[(uuid, utilisation 0..1, memory used bytes, memory total bytes)]."""
        if self._broken:
            return []
        if self._at is None:
            self._refresh()
        elif time.monotonic() - self._at >= self.ttl_s and not self._refreshing.locked():
            threading.Thread(target=self._refresh, name="gpu-probe", daemon=True).start()
        return self._rows

    def _refresh(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            self._rows = self._query()
        except Exception as exc:  # no driver, no tool, odd output: stop trying
            logger.info("GPU metrics unavailable: %s", exc)
            self._broken = True
            self._rows = []
        finally:
            self._at = time.monotonic()
            self._refreshing.release()

    @staticmethod
    def _query() -> list[tuple[str, float, float, float]]:
        try:
            import pynvml  # type: ignore[import-not-found]
        except ImportError:
            pynvml = None
        if pynvml is not None:
            pynvml.nvmlInit()
            rows = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                util = pynvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                uuid = pynvml.nvmlDeviceGetUUID(h)
                uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
                rows.append((uuid, util, float(mem.used), float(mem.total)))
            return rows
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=uuid,utilization.gpu,memory.used,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        ).stdout
        rows = []
        for line in out.strip().splitlines():
            uuid, util, used, total = (x.strip() for x in line.split(","))
            rows.append((uuid, float(util) / 100.0, float(used) * 2**20, float(total) * 2**20))
        return rows


class _CoreCollector(Collector):
    def __init__(self, core: InferenceCore, gpu: GpuProbe) -> None:
        self.core = core
        self.gpu = gpu

    def collect(self) -> Iterator[Metric]:
        core = self.core
        versions = [v for m in core.models.values() for v in m.versions.values()]
        values = [(v, _values(v.stats)) for v in versions]
        for name, doc, key in _COUNTERS:
            metric = Metric(name, doc, "counter")
            for v, vals in values:
                labels = {"model": v.spec.name, "version": v.version}
                metric.add_sample(name, labels, vals[key])
            yield metric
        yield self._failures(versions)
        pending = GaugeMetricFamily(
            "nv_inference_pending_request_count",
            "Instantaneous number of pending requests awaiting execution",
            labels=["model", "version"],
        )
        for v in versions:
            pending.add_metric([v.spec.name, v.version], v.batcher.queue_depth)
        yield pending
        yield self._batch_histogram(versions)
        yield from self._server_gauges()
        if core.provider == CUDA:
            yield from self._gpu_gauges()

    @staticmethod
    def _failures(versions: list) -> Metric:
        name = "nv_inference_request_failure"
        metric = Metric(name, "Number of failed inference requests, by reason", "counter")
        for v in versions:
            for reason, count in v.stats.failures_by_reason.items():
                labels = {"model": v.spec.name, "version": v.version, "reason": reason}
                metric.add_sample(name, labels, count)
        return metric

    @staticmethod
    def _batch_histogram(versions: list) -> Metric:
        metric = Metric("nv_inference_batch_size", "Executed batch sizes (rows)", "histogram")
        for v in versions:
            labels = {"model": v.spec.name, "version": v.version}
            sizes = {size: b.count for size, b in v.stats.batches.items()}
            for bound in (*BATCH_BUCKETS, float("inf")):
                count = sum(c for size, c in sizes.items() if size <= bound)
                le = floatToGoString(bound)
                metric.add_sample("nv_inference_batch_size_bucket", {**labels, "le": le}, count)
            metric.add_sample("nv_inference_batch_size_sum", labels, v.stats.inference_count)
            metric.add_sample("nv_inference_batch_size_count", labels, v.stats.execution_count)
        return metric

    def _server_gauges(self) -> Iterator[Metric]:
        core = self.core
        yield GaugeMetricFamily(
            "reference_server_inflight_requests",
            "Inference requests being handled now",
            value=core.in_flight,
        )
        seconds = Metric(
            "reference_server_inflight_seconds_total",
            "Integral of the in-flight count over time (rate() = mean requests in flight)",
            "counter",
        )
        seconds.add_sample("reference_server_inflight_seconds_total", {}, core.inflight.seconds())
        yield seconds
        protocols = Metric(
            "reference_server_inference_requests",
            "Inference requests received, by front-end protocol (http, grpc, tfserving)",
            "counter",
        )
        for protocol, count in sorted(core.requests_by_protocol.items()):
            protocols.add_sample(
                "reference_server_inference_requests", {"protocol": protocol}, count
            )
        yield protocols
        yield GaugeMetricFamily(
            "reference_server_event_loop_lag_seconds",
            "How late the event loop's last periodic check ran (overload shedding's signal)",
            value=core.shedder.lag_s,
        )
        shed = Metric(
            "reference_server_overload_shed_requests_total",
            "Inference requests refused because the event loop was behind (overload)",
            "counter",
        )
        shed.add_sample("reference_server_overload_shed_requests_total", {}, core.shedder.shed)
        yield shed
        info = GaugeMetricFamily(
            "reference_server_device_info",
            "Execution provider in use (1); degraded after a device-loss cpu-fallback",
            labels=["provider", "device", "degraded"],
        )
        info.add_metric([core.provider, core.device, str(core.degraded).lower()], 1)
        yield info
        yield GaugeMetricFamily(
            "reference_server_degraded",
            "1 while degraded (device lost, on CPU)",
            int(core.degraded),
        )
        yield GaugeMetricFamily("reference_server_ready", "1 when ready", int(core.ready))

    def _gpu_gauges(self) -> Iterator[Metric]:
        rows = self.gpu.read()
        if not rows:
            return
        util = GaugeMetricFamily(
            "nv_gpu_utilization", "GPU utilization (0..1)", labels=["gpu_uuid"]
        )
        used = GaugeMetricFamily(
            "nv_gpu_memory_used_bytes", "GPU used memory (bytes)", labels=["gpu_uuid"]
        )
        total = GaugeMetricFamily(
            "nv_gpu_memory_total_bytes", "GPU total memory (bytes)", labels=["gpu_uuid"]
        )
        for uuid, u, mem_used, mem_total in rows:
            util.add_metric([uuid], u)
            used.add_metric([uuid], mem_used)
            total.add_metric([uuid], mem_total)
        yield from (util, used, total)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def render(registry: CollectorRegistry) -> bytes:
    """Prometheus text format 0.0.4, keeping sample names as given (no `_total` munging)."""
    lines: list[str] = []
    for metric in registry.collect():
        mtype = "untyped" if metric.type == "unknown" else metric.type
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        name = metric.name
        if mtype == "counter" and all(s.name == f"{name}_total" for s in metric.samples):
            name += "_total"  # prometheus_client's counters drop the suffix from the family
        lines.append(f"# HELP {name} {doc}")
        lines.append(f"# TYPE {name} {mtype}")
        for s in metric.samples:
            labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in s.labels.items())
            label_part = f"{{{labels}}}" if labels else ""
            lines.append(f"{s.name}{label_part} {floatToGoString(s.value)}")
    lines.append("")
    return "\n".join(lines).encode()


class ServerMetrics:
    """The registry of one core (its own, never the global default)."""

    def __init__(self, core: InferenceCore, gpu: GpuProbe | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_CoreCollector(core, gpu or GpuProbe()))
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return render(self.registry)

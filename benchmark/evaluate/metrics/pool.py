"""A process pool for metrics, with single-threaded workers."""

from __future__ import annotations

# Threads each library would otherwise start per process: in a pool of one process per
# core they only contend with each other.
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def init_metric_worker() -> None:
    """Make a pool worker single-threaded: before the metric libraries load, and DNSMOS's sessions."""
    import os

    for name in _THREAD_ENV:
        os.environ[name] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    try:
        import onnxruntime
        from speechmos import dnsmos as speechmos_dnsmos
    except ImportError:
        return
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    folder = os.path.join(os.path.dirname(speechmos_dnsmos.__file__), "dnsmos_models")
    model = speechmos_dnsmos.DNSMOS.__new__(speechmos_dnsmos.DNSMOS)
    model.primary_model_path = os.path.join(folder, "sig_bak_ovr.onnx")
    model.onnx_sess = onnxruntime.InferenceSession(model.primary_model_path, options)
    model.p808_onnx_sess = onnxruntime.InferenceSession(os.path.join(folder, "model_v8.onnx"), options)
    speechmos_dnsmos.dnsmos = model  # speechmos.run() reuses this module-level instance


EXECUTORS = ("local", "ray")


def metric_pool(workers: int, executor: str = "local", ray_address: str | None = None):
    """Where metrics run: a local process pool, spawned (forking after torch has run can hang) with
    single-threaded workers; or, with ``executor="ray"``, a Ray cluster's CPUs (``ray_address``, else a
    local Ray), one task per submitted call. Either is a context manager with ``submit(fn, *args)``
    returning a ``concurrent.futures.Future``."""
    if executor == "ray":
        return RayMetricPool(ray_address)
    if executor != "local":
        raise ValueError(f"executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_metric_worker)


_worker_ready = False


def _in_ray_worker(fn, *args):
    """``fn(*args)`` in a Ray worker, made single-threaded (as a pool worker is) on its first task."""
    global _worker_ready
    if not _worker_ready:
        init_metric_worker()
        _worker_ready = True
    return fn(*args)


class RayMetricPool:
    """The metric pool's interface over a Ray cluster: each submitted call (a system × item's metrics) is one
    task on one CPU; Ray is started locally when no address is given and it is not running."""

    def __init__(self, address: str | None = None) -> None:
        import os

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        if not ray.is_initialized():
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        self._remote = ray.remote(num_cpus=1)(_in_ray_worker)

    def submit(self, fn, *args):
        return self._remote.remote(fn, *args).future()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

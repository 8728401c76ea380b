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


def metric_pool(workers: int):
    """A process pool for metrics: spawned (forking after torch has run can hang), single-threaded workers."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_metric_worker)

"""Same files, same four metrics: earshot's functions vs torchmetrics' audio metrics, one process each.

Usage (torchmetrics is not an earshot dependency):
    .venv/bin/pip install --no-deps torchmetrics lightning-utilities
    OMP_NUM_THREADS=1 .venv/bin/python scripts/score-peer.py RUN   # a run made by earshot score, system "noisy"
"""
import time, sys
from pathlib import Path
import numpy as np, soundfile as sf, torch
torch.set_num_threads(1)
from earshot.benchmark.evaluate.metrics import compute_metric
from torchmetrics.functional.audio import (scale_invariant_signal_distortion_ratio as tm_sisdr,
    signal_noise_ratio as tm_snr, short_time_objective_intelligibility as tm_stoi)
from torchmetrics.functional.audio.pesq import perceptual_evaluation_speech_quality as tm_pesq
import soxr
run = Path(sys.argv[1])
pairs = []
for ref in sorted((run / "reference").rglob("*.wav")):
    rel = ref.relative_to(run / "reference")
    x, r = sf.read(ref, dtype="float32"); y, _ = sf.read(run / "recon" / "noisy" / rel, dtype="float32")
    pairs.append((x, y, r))
seconds = sum(x.size / r for x, _, r in pairs)
def ours():
    for x, y, r in pairs:
        for m in ("si_sdr", "snr", "pesq_wb", "stoi"):
            compute_metric(m, x, y, r)
def theirs():
    for x, y, r in pairs:
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        tm_sisdr(ty, tx); tm_snr(ty, tx); tm_stoi(ty, tx, r)
        # PESQ wide-band needs 16 kHz: resampled as earshot's pesq_wb does
        tm_pesq(torch.from_numpy(soxr.resample(y, r, 16000)), torch.from_numpy(soxr.resample(x, r, 16000)), 16000, "wb")
for name, f in (("earshot", ours), ("torchmetrics", theirs)):
    f()  # warm-up (imports, first calls)
    t = time.perf_counter(); f(); dt = time.perf_counter() - t
    print(f"{name}: {seconds:.0f} s of audio, si_sdr+snr+pesq_wb+stoi, {dt:.2f} s, {seconds/dt:.1f} s of audio/s")

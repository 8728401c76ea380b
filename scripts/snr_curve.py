"""SNR of the quick preset's mse autoencoder against training steps, next to the PCA baseline.

Usage: python scripts/snr_curve.py OUT STEPS[,STEPS...] [key=value ...] (docs/performance.md)."""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from earshot.benchmark.config import load_config, parse_override
from earshot.benchmark.data.windows import load_data, split_by_file
from earshot.benchmark.train.loop import train_job, load_trained
from earshot.benchmark.evaluate.reconstruct import select_excerpts, reconstruct
from earshot.benchmark.evaluate.baseline import fit_pca
from earshot.benchmark.evaluate.metrics.waveform import snr
from earshot.results.rundir import JobDir

out = Path(sys.argv[1]); sets = sys.argv[2:]
checkpoints = [int(s) for s in sets[0].split(",")]
overrides = dict(parse_override(s) for s in sets[1:])
cfg = load_config("quick", overrides)
device = torch.device("cpu")
audio = load_data(cfg.data, log=lambda s: None)
split = split_by_file(audio, cfg.data.test_fraction, cfg.data.split_seed)
ex = select_excerpts(split.test, cfg.eval.excerpt_seconds, cfg.eval.excerpts_per_category, cfg.data.sample_rate)
byrel = {f.relative: f for f in split.test}
refs = [(e, byrel[e.source].audio[e.start:e.start + e.samples]) for e in ex]

def score(model, loss):
    vals = {}
    for e, r in refs:
        y = reconstruct(model, loss, r, cfg.data.window, cfg.data.normalize_windows, 64, device)
        vals.setdefault(e.category, []).append(snr(r, y))
    return {c: float(np.mean(v)) for c, v in vals.items()}, float(np.mean([x for v in vals.values() for x in v]))

pca = fit_pca(split.train, cfg.data.window, cfg.model.latent, cfg.data.normalize_windows, cfg.data.min_window_rms)
print(json.dumps({"pca": score(pca, pca)}), flush=True)
job = out / "mse"
t0 = time.time()
for steps in checkpoints:
    c = cfg.model_copy(update={"train": cfg.train.model_copy(update={"budget": str(steps)})})
    train_job(job, c, "mse", 0, split.train, device, steps=steps)
    model, loss, state = load_trained(job)
    per_cat, mean = score(model, loss)
    print(json.dumps({"steps": steps, "train_s": round(time.time() - t0, 1), "snr": mean, "per_category": per_cat}), flush=True)
    JobDir(job).done_file.unlink()  # a finished job is never retrained: let the next segment resume

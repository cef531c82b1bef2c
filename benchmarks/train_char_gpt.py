"""Benchmark: train the char-level tinyshakespeare GPT on the CPU, and compare recipes by wall time and val loss.

Model: 4 layers, 4 heads, n_embd 128, block 64, no dropout, no biases (nanoGPT's defaults). Every recipe evaluates
every 250 steps on 20 batches per split, and its wall time is that of a whole fresh process (Python start-up, imports,
data loading, training and evaluations), measured from outside.

Reference: nanoGPT's train.py with the baseline recipe (2000 steps of batch 12, lr 1e-3, 100 warm-up steps, cosine
decay to 1e-4, AdamW betas 0.9/0.99, weight decay 0.1, clipping 1.0) reached val loss 1.89 in 106 s on this kind of
2-core machine.

    python benchmarks/train_char_gpt.py                  # every recipe, then the table
    python benchmarks/train_char_gpt.py --recipe tuned   # one recipe in this process
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from coursekit import data
from coursekit.gpt import GPT
from coursekit.training import PRESETS, CharTokenizer, Trainer, TrainingConfig, train_val_split

NANOGPT_SECONDS = 106.0
NANOGPT_VAL_LOSS = 1.89

# Recipe name -> (training recipe, torch threads). TrainingConfig's defaults are exactly the baseline recipe;
# "tuned" is the course's CPU preset, so the benchmark measures what students run.
RECIPES = {
    "baseline": (TrainingConfig(), 2),
    "tuned": (PRESETS["cpu-char"].training, 2),
}


def run_recipe(name: str) -> dict:
    """Train one recipe in this process; returns its final val loss and in-process times."""
    training_config, threads = RECIPES[name]
    torch.set_num_threads(threads)
    text = data.read_text("tinyshakespeare")
    tokenizer = CharTokenizer(text)
    train_data, val_data = train_val_split(torch.tensor(tokenizer.encode(text)))
    torch.manual_seed(training_config.seed)
    assert PRESETS["cpu-char"].model.vocab_size == tokenizer.vocab_size
    model = GPT(PRESETS["cpu-char"].model)  # 4 layers, 4 heads, n_embd 128, block 64, no dropout, no biases

    def report(step, metrics):
        print(f"  {name} step {step:5d}: train {metrics['train_loss']:.4f}  val {metrics['val_loss']:.4f}",
              file=sys.stderr, flush=True)

    trainer = Trainer(model, train_data, val_data, training_config, on_eval=report, progress=False)
    start = time.perf_counter()
    history = trainer.train()
    return dict(recipe=name, val_loss=history["val_loss"][-1], train_seconds=time.perf_counter() - start,
                evaluation_seconds=trainer.evaluation_seconds)


def run_in_fresh_process(name: str) -> dict:
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, __file__, "--recipe", name, "--json"], check=True,
                               stdout=subprocess.PIPE, text=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - start
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=sorted(RECIPES), help="run one recipe in this process")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.recipe:
        start = time.perf_counter()
        result = run_recipe(args.recipe)
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{args.recipe}: val loss {result['val_loss']:.4f} in {time.perf_counter() - start:.1f} s")
        return

    print(f"load average before: {os.getloadavg()[0]:.2f}  (1-minute; 2 cores)")
    results = [run_in_fresh_process(name) for name in RECIPES]
    baseline_seconds = results[0]["wall_seconds"]
    print(f"load average after:  {os.getloadavg()[0]:.2f}")
    print(f"{'recipe':10} {'wall s':>7} {'eval s':>7} {'val loss':>9} {'/ 106 s':>8} {'/ baseline':>11}")
    for result in results:
        print(f"{result['recipe']:10} {result['wall_seconds']:7.1f} {result['evaluation_seconds']:7.1f} "
              f"{result['val_loss']:9.4f} {result['wall_seconds'] / NANOGPT_SECONDS:8.2f} "
              f"{result['wall_seconds'] / baseline_seconds:11.2f}")
    print(f"nanoGPT    {NANOGPT_SECONDS:7.1f} {'':>7} {NANOGPT_VAL_LOSS:9.4f} {1.0:8.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: nanoGPT's own train.py against coursekit's Trainer, char-level tinyshakespeare on the CPU, one run.

Three recipes, each a fresh process timed from outside (Python start-up, imports, data, training, evaluations):

- nanoGPT: `train.py` of ../shared/anchors/nanoGPT (copied to a scratch folder, never written to), its baby CPU
  configuration (4 layers, 4 heads, n_embd 128, block 64, batch 12, lr 1e-3 with 100 warm-up steps and cosine
  decay to 1e-4, AdamW betas 0.9/0.99, weight decay 0.1, clipping 1.0, eval every 250 steps on 20 batches).
  Its data is prepared by its own prepare.py from the course's tinyshakespeare.
- coursekit, nanoGPT's recipe: the same model and recipe (TrainingConfig's defaults) in coursekit.
- coursekit, cpu-char: the course's tuned preset (what notebook 04 students run).

For each: wall time, the final val loss as the run printed it (20 random batches), the final model's loss on the
whole validation split (every window, the same windows for all three, so no evaluation noise), and the time at which
its periodic evaluations first reach nanoGPT's final val loss (linear between evaluations). Every ratio is to the
nanoGPT run of the same round. --rounds N runs the three N times, interleaved, so a busy machine slows all alike.

    python benchmarks/train_char_gpt.py [--steps 2000] [--rounds 1] [--threads 2]

--threads sets torch's threads for all three (OMP_NUM_THREADS for nanoGPT, which keeps torch's default); on a
machine shared with other jobs one thread wastes less time waiting than two.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from coursekit import data
from coursekit.gpt import GPT
from coursekit.training import PRESETS, CharTokenizer, Trainer, TrainingConfig, train_val_split

NANOGPT = Path(__file__).resolve().parent.parent.parent / "shared" / "anchors" / "nanoGPT"
MODEL = PRESETS["cpu-char"].model  # 4 layers, 4 heads, n_embd 128, block 64, no dropout, no biases
RECIPES = {"coursekit-nanogpt": TrainingConfig(), "coursekit-cpu-char": PRESETS["cpu-char"].training}
EVAL_LINE = re.compile(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)")  # nanoGPT's format, used by both


def nanogpt_arguments(steps: int, out_dir: Path) -> list[str]:
    """nanoGPT's baby CPU configuration (its anchor README), with `steps` steps; a checkpoint at every evaluation
    (always_save_checkpoint) so the final model can be measured on the whole validation split."""
    return ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
            "--log_interval=500", f"--block_size={MODEL.block_size}", "--batch_size=12",
            f"--n_layer={MODEL.n_layer}", f"--n_head={MODEL.n_head}", f"--n_embd={MODEL.n_embd}",
            f"--max_iters={steps}", f"--lr_decay_iters={steps}", "--dropout=0.0", "--always_save_checkpoint=True",
            f"--out_dir={out_dir}"]


def prepare_nanogpt(scratch: Path) -> Path:
    """A scratch copy of nanoGPT with its shakespeare_char data prepared offline from the course's corpus."""
    if not (NANOGPT / "train.py").is_file():
        raise SystemExit(f"nanoGPT's files are missing at {NANOGPT}: the benchmark needs ../shared/anchors/nanoGPT")
    copy = scratch / "nanoGPT"
    shutil.copytree(NANOGPT, copy)
    for path in [copy, *copy.rglob("*")]:  # the anchor is read-only; its copy must take prepare.py's output
        path.chmod(path.stat().st_mode | 0o200)
    folder = copy / "data" / "shakespeare_char"
    shutil.copy(data.path("tinyshakespeare"), folder / "input.txt")  # prepare.py then skips its download
    subprocess.run([sys.executable, "prepare.py"], cwd=folder, check=True, stdout=subprocess.DEVNULL)
    return copy


def run_timed(command: list[str], cwd: Path, threads: int) -> dict:
    """Run a training process; timestamp each evaluation line as it arrives. Returns wall time and evaluations."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)})
    evaluations = []  # (seconds since start, step, val loss)
    for line in process.stdout:
        match = EVAL_LINE.search(line)
        if match:
            evaluations.append((time.perf_counter() - start, int(match[1]), float(match[3])))
            print(f"  {Path(command[1]).name} {' '.join(command[2:4])} {line.strip()}", file=sys.stderr, flush=True)
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}")
    return dict(wall_seconds=time.perf_counter() - start, evaluations=evaluations)


def seconds_to_reach(evaluations: list[tuple[float, int, float]], target: float) -> float | None:
    """When the val loss first reaches target, linear in time between two evaluations; None if it never does.

    >>> seconds_to_reach([(1.0, 0, 4.0), (3.0, 250, 2.0), (5.0, 500, 1.5)], 3.0)
    2.0
    """
    for (t0, _, loss0), (t1, _, loss1) in zip(evaluations, evaluations[1:]):
        if loss1 <= target:
            return t0 + (t1 - t0) * (loss0 - target) / (loss0 - loss1) if loss0 > target else t0
    return None


@torch.no_grad()
def whole_split_loss(state_dict: dict, split: torch.Tensor) -> float:
    """Mean next-token loss over every non-overlapping block_size window of split, for a saved model."""
    model = GPT(MODEL)
    model.load_state_dict(state_dict)
    model.eval()
    windows = (len(split) - 1) // MODEL.block_size
    x = split[: windows * MODEL.block_size].view(windows, MODEL.block_size).long()
    y = split[1: windows * MODEL.block_size + 1].view(windows, MODEL.block_size).long()
    losses = [model(x[i:i + 256], y[i:i + 256])[1] * len(x[i:i + 256]) for i in range(0, windows, 256)]
    return float(sum(losses) / windows)


def train_recipe(name: str, steps: int, threads: int, save: str) -> None:
    """The child process for one coursekit recipe: prints evaluations as nanoGPT does, saves the final model."""
    torch.set_num_threads(threads)
    config = dataclasses.replace(RECIPES[name], max_steps=steps)
    text = data.read_text("tinyshakespeare")
    tokenizer = CharTokenizer(text)
    train_data, val_data = train_val_split(torch.tensor(tokenizer.encode(text)))
    torch.manual_seed(config.seed)
    model = GPT(MODEL)

    def report(step, metrics):
        print(f"step {step}: train loss {metrics['train_loss']:.4f}, val loss {metrics['val_loss']:.4f}", flush=True)

    Trainer(model, train_data, val_data, config, on_eval=report, progress=False).train()
    torch.save(model.state_dict(), save)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="training steps of every recipe (nanoGPT's: 2000)")
    parser.add_argument("--rounds", type=int, default=1, help="run the three recipes this many times, interleaved")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every recipe")
    parser.add_argument("--recipe", choices=sorted(RECIPES), help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.recipe:
        train_recipe(args.recipe, args.steps, args.threads, args.save)
        return

    text = data.read_text("tinyshakespeare")
    _, val_data = train_val_split(torch.tensor(CharTokenizer(text).encode(text)))
    print(f"{args.steps} steps, {args.rounds} round(s), {args.threads} thread(s); load average before: {os.getloadavg()[0]:.2f} (2 cores)")
    rows = {name: [] for name in ["nanoGPT", *RECIPES]}
    with tempfile.TemporaryDirectory() as scratch:
        nanogpt = prepare_nanogpt(Path(scratch))
        for round_ in range(args.rounds):
            out_dir = Path(scratch) / f"nanogpt-out-{round_}"
            reference = run_timed([sys.executable, "train.py", *nanogpt_arguments(args.steps, out_dir)], nanogpt,
                                  args.threads)
            checkpoint = torch.load(out_dir / "ckpt.pt", map_location="cpu", weights_only=True)
            assert checkpoint["iter_num"] == args.steps, "nanoGPT's last checkpoint is not its final model"
            reference["whole_val_loss"] = whole_split_loss(checkpoint["model"], val_data)
            target = reference["evaluations"][-1][2]
            results = {"nanoGPT": reference}
            for name in RECIPES:
                save = Path(scratch) / f"{name}.pt"
                results[name] = run_timed([sys.executable, __file__, "--recipe", name, "--steps", str(args.steps),
                                           "--threads", str(args.threads), "--save", str(save)], Path.cwd(),
                                          args.threads)
                results[name]["whole_val_loss"] = whole_split_loss(torch.load(save, weights_only=True), val_data)
            for name, result in results.items():
                reached = seconds_to_reach(result["evaluations"], target)
                rows[name].append(dict(
                    wall=result["wall_seconds"], val=result["evaluations"][-1][2], whole=result["whole_val_loss"],
                    wall_ratio=result["wall_seconds"] / reference["wall_seconds"],
                    reach_ratio=None if reached is None else reached / reference["evaluations"][-1][0],
                    val_gap=result["evaluations"][-1][2] - target,
                    whole_gap=result["whole_val_loss"] - reference["whole_val_loss"]))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("ratios are to nanoGPT's run in the same round; with several rounds: median (min-max)")
    print()
    print("| recipe | wall s | wall / nanoGPT | val loss (20 batches) | - nanoGPT | whole val split | - nanoGPT "
          "| time to nanoGPT's final val / nanoGPT's |")
    print("|---|---|---|---|---|---|---|---|")
    for name, measured in rows.items():
        print(f"| {name} | " + " | ".join(spread([row[key] for row in measured], digits) for key, digits in [
            ("wall", 1), ("wall_ratio", 2), ("val", 4), ("val_gap", 4), ("whole", 4), ("whole_gap", 4),
            ("reach_ratio", 2)]) + " |")


def spread(values: list, digits: int) -> str:
    """'median (min-max)' of several numbers, one number alone, 'never' for runs that did not reach the target.

    >>> spread([1.0, 3.0, 2.0], 1), spread([0.5], 2), spread([None], 2)
    ('2.0 (1.0-3.0)', '0.50', 'never')
    """
    if any(value is None for value in values):
        return "never" if len(values) == 1 else f"never in {sum(value is None for value in values)}/{len(values)}"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


if __name__ == "__main__":
    main()

"""GPT-2 small in coursekit: greedy generation speed next to Hugging Face `transformers`, and memory when loading.

    python benchmarks/gpt2.py [--new-tokens 64] [--repeats 3]

No weights are downloaded: a GPT-2-small-shaped `transformers` model (124M parameters, random weights) is saved
with save_pretrained to a temporary folder, exactly as the Hub stores GPT-2, and both sides use it.

- Generation: greedy decoding of --new-tokens tokens after a 16-token prompt, batch 1, two threads. coursekit's
  GPT.generate (KV cache) against transformers' generate (its KV cache, do_sample=False). The two sides take
  turns, --repeats times each, so a busy machine slows both alike; the table gives the median tokens per second
  with the min-max spread, and the ratio of medians together with the median of the per-turn ratios.
  Target: ratio >= 1.0.
- Memory: coursekit.gpt2.load_gpt2 on that folder in a fresh Python process, which reports its own peak resident
  set size (VmHWM, which includes Python and torch themselves). Target: <= 1.2 GB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

SPEED_TARGET = 1.0  # coursekit tokens/s divided by transformers tokens/s, at least
MEMORY_TARGET_MB = 1200  # peak RSS of a fresh process loading GPT-2 small, at most
PROMPT_TOKENS = 16


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM on Linux (ru_maxrss would include the parent's, from fork)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024  # kB
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1024)


def measure_loading(folder: str) -> None:
    """Run in a fresh process: load GPT-2 from folder and print its peak memory and the time taken, as JSON."""
    start = time.perf_counter()
    import torch  # noqa: F401  (imported first so its share of memory is reported separately)

    baseline = peak_rss_mb()
    from coursekit.gpt2 import load_gpt2

    model = load_gpt2(folder)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
                      "after_import_torch_mb": baseline, "parameters": model.num_parameters()}))


def save_random_gpt2_small(folder: str):
    """A GPT-2-small-shaped transformers model with random weights, saved as the Hub stores GPT-2."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()  # GPT2Config() defaults are GPT-2 small
    model.save_pretrained(folder)
    return model


def tokens_per_second(generate, new_tokens: int) -> float:
    start = time.perf_counter()
    generate()
    return new_tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--measure-loading", metavar="FOLDER", help=argparse.SUPPRESS)  # the fresh-process part
    arguments = parser.parse_args()
    if arguments.measure_loading:
        measure_loading(arguments.measure_loading)
        return

    import torch

    from coursekit.gpt2 import load_gpt2

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        reference = save_random_gpt2_small(folder)
        child = subprocess.run([sys.executable, __file__, "--measure-loading", folder], capture_output=True,
                               text=True, check=True)
        loading = json.loads(child.stdout.strip().splitlines()[-1])
        ours = load_gpt2(folder)

    prompt = torch.randint(50257, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))
    n = arguments.new_tokens

    def generate_ours():
        return ours.generate(prompt, n, temperature=0)

    def generate_theirs():
        with torch.no_grad():
            return reference.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True,
                                      pad_token_id=50256)

    same = torch.equal(generate_ours(), generate_theirs())  # also a warm-up for both
    speeds = {"coursekit": [], "transformers": []}
    sides = [("coursekit", generate_ours), ("transformers", generate_theirs)]
    for turn in range(arguments.repeats):
        for side, generate in sides if turn % 2 == 0 else sides[::-1]:  # who goes first alternates
            speeds[side].append(tokens_per_second(generate, n))
    median = {side: statistics.median(values) for side, values in speeds.items()}
    ratio = median["coursekit"] / median["transformers"]
    turn_ratios = [ours / theirs for ours, theirs in zip(speeds["coursekit"], speeds["transformers"])]
    memory = loading["peak_rss_mb"]

    def spread(values):
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    print(f"GPT-2 small shape, random weights, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"greedy continuations identical: {same}")
    print()
    print("| measurement | coursekit | transformers | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    print(f"| greedy generation, tokens/s, median (min-max) of {arguments.repeats} turns (prompt {PROMPT_TOKENS}, "
          f"{n} new) | {spread(speeds['coursekit'])} | {spread(speeds['transformers'])} | {ratio:.2f}x "
          f"(per turn {statistics.median(turn_ratios):.2f}x, {min(turn_ratios):.2f}-{max(turn_ratios):.2f}) | "
          f">= {SPEED_TARGET:.1f}x | {'yes' if ratio >= SPEED_TARGET else 'NO'} |")
    print(f"| peak RSS loading GPT-2 small in a fresh process (MB) | {memory:.0f} | | | <= {MEMORY_TARGET_MB} | "
          f"{'yes' if memory <= MEMORY_TARGET_MB else 'NO'} |")
    print()
    print(f"(loading took {loading['seconds']:.1f} s including imports; the process held "
          f"{loading['after_import_torch_mb']:.0f} MB after importing torch; {loading['parameters']:,} parameters)")


if __name__ == "__main__":
    main()

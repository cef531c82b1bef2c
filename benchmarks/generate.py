"""Benchmark: greedy generation with the KV cache against recomputing the whole sequence for every new token.

Two random-weight models (speed does not depend on what the weights say): GPT-2 small's dimensions and a
course-sized BPE model. For each, generate 500 tokens greedily from an 8-token prompt both ways, print tokens per
second, and check that both ways produce exactly the same tokens.

    python benchmarks/generate.py [--new-tokens 500] [--threads 2] [--only course]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from coursekit.gpt import GPT, GPTConfig

MODELS = {
    "gpt2-small": GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
    "course-bpe": GPTConfig(vocab_size=512, block_size=512, n_layer=4, n_head=4, n_embd=128),
}
PROMPT_LENGTH = 8
TARGET_SPEEDUP = 5.0  # on the larger model


def tokens_per_second(model: GPT, prompt: torch.Tensor, new_tokens: int, use_cache: bool):
    start = time.perf_counter()
    output = model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)
    return new_tokens / (time.perf_counter() - start), output


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=500)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only", choices=sorted(MODELS), help="benchmark one model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.new_tokens} greedy tokens from a {PROMPT_LENGTH}-token prompt; {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':12} {'params':>8} {'cached tok/s':>13} {'recomputed tok/s':>17} {'speed-up':>9}  same tokens")
    for name, config in MODELS.items():
        if args.only and name != args.only:
            continue
        torch.manual_seed(0)
        model = GPT(config).eval()
        prompt = torch.randint(config.vocab_size, (1, PROMPT_LENGTH), generator=torch.Generator().manual_seed(0))
        tokens_per_second(model, prompt, 5, use_cache=True)  # warm-up: first calls allocate and pick kernels
        cached_speed, cached = tokens_per_second(model, prompt, args.new_tokens, use_cache=True)
        recomputed_speed, recomputed = tokens_per_second(model, prompt, args.new_tokens, use_cache=False)
        same = torch.equal(cached, recomputed)
        print(f"{name:12} {model.num_parameters() / 1e6:7.1f}M {cached_speed:13.1f} {recomputed_speed:17.1f} "
              f"{cached_speed / recomputed_speed:8.1f}x  {same}", flush=True)
        assert same, f"{name}: greedy tokens with the KV cache differ from full recomputation"
    print(f"target: speed-up >= {TARGET_SPEEDUP:.0f}x on gpt2-small")


if __name__ == "__main__":
    main()

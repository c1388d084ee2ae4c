"""Checkpoint writes held on a time cadence against every save written, in one run (issue 32).

    python bench/checkpoint_cadence.py [--rounds 7]

The default config (MLP width 256, digits, 20 epochs) as bench/step_throughput.py's `hyperlab` variant, with
callbacks.model_checkpoint.write_every_s=0 (every save written), the default (held, written every 30 s and at
the end), no checkpoints, and the hand-written loop; rounds interleaved, medians of steps per second. Prints the
table rows; the figures go to bench/results.md by hand ("Step throughput").
"""

import argparse
import logging
import statistics

import step_throughput as st

VARIANTS = {
    "every save written (write_every_s=0)": lambda: st.hyperlab(["callbacks.model_checkpoint.write_every_s=0"], 20),
    "held, written every 30 s (default)": lambda: st.hyperlab([], 20),
    "no checkpoints": lambda: st.hyperlab(["callbacks.model_checkpoint=null"], 20),
    "loop": lambda: st.hand_written([], 20, False),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    rates = st.measure(VARIANTS, args.rounds)
    loop = statistics.median(rates["loop"])
    for name, r in rates.items():
        median = statistics.median(r)
        print(f"| {name} | {median:.0f} | {min(r):.0f}..{max(r):.0f} | {median / loop:.2f}x |")


if __name__ == "__main__":
    main()

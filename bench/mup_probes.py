"""Why muP's GPT loses to the standard one at width 256 (issue 30): one change at a time to the muP network with
alpha_out = 8 at its transferred LR, against that network unchanged and the standard network at its own best LR,
all in the same run.

    python bench/mup_probes.py [--width 256] [--probes mup standard emb_lr/4 ...]

Each probe is `python train.py` with the GPT protocol of bench/hp_transfer.py (500 steps, 1.02M byte tokens of
data=stdlib, val/bpb, seed 42) in a child process that first makes its one change by patching hyperlab in memory
(nothing of it is a knob yet):
- emb_lr/K: the token and position embeddings (and the tied readout) at lr / K instead of lr: muP keeps a
  vector-like parameter's Adam LR constant in width, so at width 256 they train at 16x the standard network's;
- init_unscaled: hidden matrices start N(0, 0.02) at every width instead of 0.02 / sqrt(m);
- attention_sqrt: the standard 1/sqrt(head dim) attention scale instead of muP's 1/head dim;
- wd0, standard_wd0: weight_decay=0 (an override, no patch): AdamW's decay is lr x wd a step, so muP's
  width-constant embedding LR also decays the embeddings 16x faster than the standard network's at width 256.
Results are kept under logs/bench/mup_probes (a stopped bench reruns only what it had not finished) and written to
the "muP probes (GPT)" section of bench/results.md.
"""

import argparse
import functools
import json
import math
import runpy
import subprocess
import sys
from pathlib import Path

from hp_transfer import PROFILES
from report import kept, publish

ROOT = Path(__file__).resolve().parents[1]
PROBES = {  # name: (parametrization, log2 lr, alpha_out, what it changes)
    "mup": ("mup", -5, 8.0, "muP, alpha_out 8, its LR from width 32 (unchanged)"),
    "standard": ("standard", -9, 1.0, "the standard network at its own best LR at width 256"),
    "wd0": ("mup", -5, 8.0, "muP without weight decay (AdamW decays by lr x wd: 16x the standard's on embeddings)"),
    "standard_wd0": ("standard", -9, 1.0, "the standard network without weight decay"),
    "emb_lr/4": ("mup", -5, 8.0, "muP with the embeddings' LR / 4"),
    "emb_lr/16": ("mup", -5, 8.0, "muP with the embeddings' LR / 16 (the standard network's ratio)"),
    "init_unscaled": ("mup", -5, 8.0, "muP with hidden matrices at N(0, 0.02), not 0.02 / sqrt(m)"),
    "emb_lr/16+init_unscaled": ("mup", -5, 8.0, "the two changes that helped, together"),
    "attention_sqrt": ("mup", -5, 8.0, "muP with the 1/sqrt(d) attention scale"),
}


def patch(name: str) -> None:
    """The probe's change (or changes joined by +), made in this (child) process before train.py runs."""
    if "+" in name:
        for part in name.split("+"):
            patch(part)
        return
    from hyperlab.models import gpt
    from hyperlab.training import parametrization

    if name.startswith("emb_lr/"):
        factor, scales_of = 1 / float(name.split("/")[1]), parametrization.lr_scales

        def lr_scales(net, base, width_mult, optimizer_class):
            scales = scales_of(net, base, width_mult, optimizer_class)
            return {k: v * factor if "embedding" in k else v for k, v in scales.items()}

        parametrization.lr_scales = lr_scales
    elif name == "init_unscaled":
        build = gpt.GPT.__init__

        @functools.wraps(build)  # the data module's check reads the network's signature (vocab_size)
        def unscaled(self, *args, **kwargs):
            build(self, *args, **kwargs)
            depth = len(self.blocks)
            for key, parameter in self.named_parameters():
                if key.startswith("blocks.") and parameter.ndim == 2:
                    residual = key.endswith(("attention.proj.weight", "mlp.2.weight"))
                    gpt.nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * depth) if residual else 0.02)

        gpt.GPT.__init__ = unscaled
    elif name == "attention_sqrt":
        attend = gpt.CausalSelfAttention.__init__
        gpt.CausalSelfAttention.__init__ = lambda self, width, heads, dropout, scale=None: attend(
            self, width, heads, dropout, None
        )


def run(name: str, width: int, folder: Path) -> float:
    parametrization, log2_lr, alpha, _ = PROBES[name]
    extra = [o for o in PROFILES["gpt"][0] if not o.startswith("hydra.")]
    out = folder / name.replace("/", "_").replace("+", "_and_")
    overrides = [
        *extra,
        f"model.width={width}",
        f"model.parametrization={parametrization}",
        f"model.output_multiplier={alpha}",
        f"lr={2.0**log2_lr!r}",
        "trainer.max_epochs=5",
        "callbacks.early_stopping=null",
        "callbacks.rich_progress_bar=null",
        "test=false",
        f"hydra.run.dir={out}",
        *(["weight_decay=0.0"] if name.endswith("wd0") else []),
    ]
    subprocess.run([sys.executable, __file__, "--child", name, *overrides], cwd=ROOT, check=True, capture_output=True)
    return json.loads((out / "metrics.json").read_text())["val/bpb"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--probes", nargs="+", choices=list(PROBES), default=list(PROBES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.child:  # one probe: patch, then train.py as the command line gives it
        patch(args.child)
        sys.argv = [str(ROOT / "train.py"), *overrides]
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
        return
    folder = ROOT / "logs" / "bench" / f"mup_probes_w{args.width}"
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "partial.json"
    found = {name: kept(partial, name, lambda n=name: run(n, args.width, folder)) for name in args.probes}
    base = found.get("mup")
    rows = [
        f"GPT width {args.width}, 500 steps (1.02M byte tokens) of data=stdlib, seed 42, val/bpb of the best "
        "checkpoint; each probe changes one thing of the muP network (alpha_out 8, LR 2^-5 found at width 32).",
        "",
        "| probe | what | log2(lr) | val/bpb | vs muP unchanged |",
        "|---|---|---|---|---|",
    ]
    for name, value in found.items():
        _, log2_lr, _, what = PROBES[name]
        versus = f"{value / base - 1:+.2%}" if base else "-"
        rows.append(f"| {name} | {what} | {log2_lr} | {value:.4f} | {versus} |")
    publish("muP probes (GPT)", "python bench/mup_probes.py " + " ".join(sys.argv[1:]), rows)


if __name__ == "__main__":
    main()

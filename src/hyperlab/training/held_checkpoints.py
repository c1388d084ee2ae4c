"""Checkpoint writes held in memory and written on a time cadence (`callbacks.model_checkpoint.write_every_s`).

On a small model an epoch takes tens of milliseconds and each checkpoint write several, so writing the best or
last.ckpt at every epoch's end is a large share of the default fit (bench/results.md, "Step throughput"). Here
each save takes a point-in-time copy of the state in memory (a clone of its tensors), and the files are brought up
to date at most every `every_s` seconds, at the end of fit and when fit ends in an exception (Lightning turns
SIGTERM into one). Between two writes only the newest state of each file is kept: a best checkpoint that a better
one replaced before the write is never written at all. What a kill -9 can lose is the training since the last
write: at most `every_s` seconds, plus the save that was due.

The files on disk at any moment are one consistent earlier save point (the best file and last.ckpt of the same
write), so `resume=auto` after a kill resumes exactly as from an every-epoch cadence.
"""

import os
import time
from dataclasses import dataclass, field

import torch


def held_copy(node):
    """The checkpoint with every tensor cloned: the model and optimizer keep training in place after a save.
    Containers are rebuilt with their own type (an OrderedDict state_dict stays one); everything else is shared,
    as dump_checkpoint builds it afresh at each save. Lightning's apply_to_collection does the same walk 4x
    slower (1.3 vs 0.3 ms on the default MLP's checkpoint, most of it the RNG state's list of 625 ints), and the
    default run saves once an epoch."""
    if isinstance(node, torch.Tensor):
        return node.detach().clone()
    if isinstance(node, dict):
        copy = node.copy()  # keeps OrderedDict / defaultdict
        for key, value in copy.items():
            copy[key] = held_copy(value)
        return copy
    if isinstance(node, list):
        return [held_copy(value) for value in node]
    if isinstance(node, tuple):
        values = [held_copy(value) for value in node]
        return type(node)(*values) if hasattr(node, "_fields") else tuple(values)
    return node


@dataclass
class HeldWrites:
    """The checkpoint file operations since the last write, newest last, and when that write was."""

    every_s: float
    last_write: float = field(default_factory=lambda: time.monotonic())  # looked up per call: a test's clock
    saves: dict = field(default_factory=dict)  # path -> checkpoint held in memory
    links: dict = field(default_factory=dict)  # link path -> target path (a hard link, or the target's held copy)
    removals: list = field(default_factory=list)

    def save(self, checkpoint: dict, path: str) -> None:
        self.links.pop(path, None)
        self.saves[path] = held_copy(checkpoint)
        self.removals = [p for p in self.removals if p != path]

    def link(self, target: str, path: str) -> None:
        self.saves.pop(path, None)
        self.links[path] = target
        self.removals = [p for p in self.removals if p != path]

    def remove(self, path: str) -> None:
        """A file that was never written is simply not written; one already on disk is removed at the write."""
        if path in self.links.values() and path in self.saves:  # a link still needs its content: write it there
            for link, target in list(self.links.items()):
                if target == path:
                    self.saves[link] = self.saves[path]
                    del self.links[link]
        self.saves.pop(path, None)
        self.links.pop(path, None)
        self.removals.append(path)

    def due(self) -> bool:
        return time.monotonic() - self.last_write >= self.every_s

    def write(self, save, link, remove) -> None:
        """Bring the files up to date: saves first, then links to them, then removals."""
        for path, checkpoint in self.saves.items():
            save(checkpoint, path)
        for path, target in self.links.items():
            link(target, path)
        for path in self.removals:
            if os.path.lexists(path):
                remove(path)
        self.saves, self.links, self.removals = {}, {}, []
        self.last_write = time.monotonic()

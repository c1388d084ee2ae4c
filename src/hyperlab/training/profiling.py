"""The profiler a run has when it profiles nothing (`trainer.profiler`, default)."""

import contextlib

from lightning.pytorch.profilers import PassThroughProfiler


class NoProfiler(PassThroughProfiler):
    """Lightning's PassThroughProfiler (what a Trainer gets with `profiler=None`), its `profile` one shared no-op
    context. Lightning opens `profiler.profile(...)` around every hook it calls, ~60 a step on the default run;
    Lightning's own is a generator-based context manager, ~0.9 us each to do nothing. `nullcontext` holds no
    state, so one instance serves nested and concurrent uses."""

    NOTHING = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:
        return self.NOTHING

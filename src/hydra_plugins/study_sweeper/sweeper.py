from hydra.plugins.sweeper import Sweeper

from hyperlab.config.cli import reported_errors
from hyperlab.config.sweep_rules import check_search, check_sweeper


class StudySweeper(Sweeper):
    """Hydra accepts plugin classes only under `hydra_plugins` and imports that namespace at every start-up, so
    this class stays light: the settings and the search are checked first (hyperlab.config.sweep_rules, no
    optuna or torch), then the sweep itself (hyperlab.search.sweeper.OptunaSweep, with optuna and torch) loads.
    A user's mistake is one `error: ...` line and exit status 1, before the sweep dir or the study exists."""

    def __init__(self, **settings):
        with reported_errors(job=False):
            check_sweeper(settings)
        self.settings = settings

    def setup(self, *, hydra_context, task_function, config) -> None:
        with reported_errors(job=False):
            check_search(config, self.settings)
            from hyperlab.builders.hardware import refuse_missing_hardware
            from hyperlab.search.sweeper import OptunaSweep

            refuse_missing_hardware(config.trainer, config.hydra.runtime.choices.get("trainer"))
            self.sweep_impl = OptunaSweep(**self.settings)
            self.sweep_impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]):
        with reported_errors(job=False):
            return self.sweep_impl.sweep(arguments)

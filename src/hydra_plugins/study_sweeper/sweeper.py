from hydra.plugins.sweeper import Sweeper


class StudySweeper(Sweeper):
    """Hydra accepts plugin classes only under `hydra_plugins` and imports that namespace at every start-up, so
    this class stays light: the sweep itself (hyperlab.search.sweeper.OptunaSweep, with optuna and torch) loads
    in setup()."""

    def __init__(self, **settings):
        self.settings = settings

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hyperlab.search.sweeper import OptunaSweep

        self.sweep_impl = OptunaSweep(**self.settings)
        self.sweep_impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]):
        return self.sweep_impl.sweep(arguments)

"""`python -m hyperlab.scale SWEEP_DIR [--width W | --params N] [--tokens D | --compute C] [--name NAME]`: the
scaling-law report of a grid of small runs (`-m hparams_search=scaling`) and the target run it predicts. The
command line's entry point; the report is hyperlab.search.scaling_report, the fits hyperlab.search.scaling_laws."""

from hyperlab.search.scaling_report import main

if __name__ == "__main__":
    main()

"""`python -m hyperlab.select SWEEP_DIR [--rule one_se] [--refit missing]`: a sweep's model selection report and
refit. The command line's entry point; the selection itself is hyperlab.search.select."""

from hyperlab.search.select import main

if __name__ == "__main__":
    main()

"""``python -m earshot``: the same command line as ``earshot``."""

from earshot.benchmark.cli import main

if __name__ == "__main__":
    main()

"""``python -m contrast.train [overrides]``: the training command (:mod:`contrast.cli.train`)."""

from contrast.cli.train import main, run, run_training

__all__ = ["main", "run", "run_training"]

if __name__ == "__main__":
    main()

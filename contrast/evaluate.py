"""``python -m contrast.evaluate checkpoint=...``: the evaluation command (:mod:`contrast.cli.evaluate`)."""

from contrast.cli.evaluate import main
from contrast.evaluation.runner import describe_encoder, evaluate

__all__ = ["describe_encoder", "evaluate", "main"]

if __name__ == "__main__":
    main()

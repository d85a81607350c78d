"""How representations are judged: probe suites over fixed splits (:mod:`~contrast.evaluation.suite`), their
runner and reports, and the probes themselves with their baselines (:mod:`contrast.evaluation.probes`)."""

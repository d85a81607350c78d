"""The commands: thin entry points that compose a Hydra config and call the library.

``python -m contrast.train`` (:mod:`contrast.cli.train`), ``python -m contrast.evaluate``
(:mod:`contrast.cli.evaluate`) and ``python -m contrast.export`` (:mod:`contrast.cli.embed`); also
``python -m contrast <command>`` and the ``contrast-*`` console scripts.
"""

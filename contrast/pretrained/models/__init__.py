"""Encoders shipped with the package: ``<name>.pt`` (weights and encoder config) and ``<name>.json`` (card).

Read them with :func:`contrast.pretrained_models` and :func:`contrast.load_encoder` (``load_encoder(name)``).
"""

"""``python -m contrast.export checkpoint=... data.path=... out=...``: the embedding command
(:mod:`contrast.cli.embed`). Not ``contrast.embed``: that name is the embedding function, and a submodule of
that name would replace it as soon as it was imported. Importing this module loads neither Hydra nor
Lightning; running it does.
"""

from contrast.embeddings.export import embed_file

__all__ = ["embed_file", "main"]


def main() -> None:
    """Run the embedding command (Hydra config ``conf/embed.yaml``)."""
    from contrast.cli.embed import main as run

    run()


if __name__ == "__main__":
    main()

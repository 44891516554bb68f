"""posterq: label movie posters with genres, from one poster to a stream of jobs."""

__version__ = "0.1.0"

"""posterq: label movie posters with genres, from one poster to a stream of jobs.

    from posterq import Labeller
    print(Labeller().label_path("heat.jpg").genres)

`Labeller` (posterq.labeller) is the Python API; `Prediction` is what it returns. Both load
lazily, so `import posterq` loads no model runtime (the API and the CLI import it too).
"""

__version__ = "0.1.0"

__all__ = ["Labeller", "Prediction", "PosterqError", "__version__"]

_LAZY = {"Labeller": "posterq.labeller", "Prediction": "posterq.classifier",
         "PosterqError": "posterq.exceptions"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'posterq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

"""What Python users and the command line call: fit, evaluate, predict, recipes.

Each function here takes names or objects (a spec string or a model, a dataset name or a
``Dataset``, a run directory or a model) and fills what is not given from
:mod:`capas.defaults`; the CLI only parses options into these calls and prints the result.
"""

from capas.api.evaluate import Evaluation, evaluate
from capas.api.fit import FitResult, fit, resume
from capas.api.predict import predict
from capas.api.recipes import RecipeResult, load_recipe, run_recipe

__all__ = [
    "Evaluation",
    "FitResult",
    "RecipeResult",
    "evaluate",
    "fit",
    "load_recipe",
    "predict",
    "resume",
    "run_recipe",
]

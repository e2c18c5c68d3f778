"""The one table of defaults, shared by ``capas.fit``, ``capas train``, recipes and every
other entry point (so a Python user and a command-line user train the same run).

Nothing here imports torch: the command line reads these values to print ``--help``.
"""

from __future__ import annotations

OPTIMIZER = "adam"
EPOCHS = 30
BATCH_SIZE = 32
ACTIVATION = "relu"
ENGINE = "auto"
DEVICE = "auto"
SEED = 0
VALIDATION = 0.1
DATASET = "digits"
HIDDEN_UNITS = 64  # the default spec is <inputs>-64-<outputs>

#: learning rate when none is given: what each optimizer family is usually run with;
#: the adaptive ones (adam, adamw, nadam, radam, adamax...) take ``ADAPTIVE_LR``; rprop, asgd,
#: lbfgs and adafactor start from torch's own defaults.
LR_FOR_OPTIMIZER = {
    "sgd": 0.1,
    "momentum": 0.05,
    "nesterov": 0.05,
    "adagrad": 0.01,
    "adadelta": 1.0,
    "rmsprop": 0.001,
    "rprop": 0.01,
    "asgd": 0.01,
    "lbfgs": 1.0,
    "adafactor": 0.01,
}
ADAPTIVE_LR = 0.003

#: learning rate of a model kind whose training is not a torch optimizer's: an RBM's
#: contrastive-divergence step (Hinton's practical guide: 0.1 for binary units)
LR_FOR_MODEL = {"rbm": 0.1}

#: the loss of a task when none is given (and the output activation it implies)
LOSS_FOR_TASK = {"classification": "cross_entropy", "regression": "mse"}


def default_lr(optimizer: str) -> float:
    """The learning rate ``optimizer`` (any spelling: ``Adam``, ``sgd``) starts from."""
    key = str(optimizer).strip().lower().replace("-", "_")
    return LR_FOR_OPTIMIZER.get(key, ADAPTIVE_LR)


def default_loss(task: str) -> str:
    """``cross_entropy`` for classification, ``mse`` for regression."""
    return LOSS_FOR_TASK[task]


#: The names ``--help`` offers, kept here so that ``capas --help`` imports no torch.
#: ``tests/test_cli_fast.py`` checks that each equals the registry it mirrors.
ACTIVATIONS = (
    "linear",
    "step",
    "sgn",
    "sigmoid",
    "tanh",
    "softsign",
    "softmax",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
)  # capas.layers.ACTIVATIONS
INIT_SCHEMES = (
    "glorot_uniform",
    "glorot_normal",
    "glorot_uniform_x4",
    "he_uniform",
    "he_normal",
    "lecun_normal",
    "normal",
    "zeros",
)  # capas.layers.init.SCHEMES
OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamw",
    "adamax",
    "nadam",
    "radam",
    "rprop",
    "asgd",
    "lbfgs",
    "adafactor",
)  # capas.train.optim.OPTIMIZERS
LOSSES = ("mse_half_sum", "mse", "mae", "huber", "cross_entropy", "binary_cross_entropy")  # the loss registry
SCHEDULES = (
    "step",
    "exponential",
    "cosine",
    "triangular",
    "triangular2",
    "exp_range",
    "one_cycle",
    "warmup",
    "plateau",
)  # capas.train.optim.SCHEDULERS
ENGINES = ("auto", "fast", "backprop", "autograd")  # TrainConfig.engine
PLOTS = (
    "curves",
    "gradients",
    "confusion",
    "boundary",
    "hidden",
    "weights",
    "activations",
    "time-gradients",
    "feature-maps",
    "filters",
    "top-inputs",
    "attention",
)  # diagnostics.plots

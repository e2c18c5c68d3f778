"""A playground session's settings: one validated object, the page's URL and the export command.

Every control of the page is a field here; the page keeps them in its URL, sends them as
JSON, and the server checks them against :data:`LIMITS` before building anything, so a
settings change either takes effect whole or is refused with a message (the session keeps
its last good state).
"""

from __future__ import annotations

import shlex
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from capas import defaults
from capas.data.playground import CLASSIFICATION, FEATURES, MAX_CLASSES, REGRESSION
from capas.errors import CapasError


class PlaygroundError(CapasError):
    """A setting, spec or upload the playground refuses; the page shows the message."""


class LimitError(PlaygroundError):
    """A limit of :data:`LIMITS` was hit (network size, points, upload size, message rate)."""


#: what one session may ask for: a playground is a picture of learning, not a cluster job
LIMITS = {
    "max_points": 2000,  # generated or uploaded samples
    "max_hidden_layers": 8,
    "max_units": 64,  # per hidden layer (the + button stops there)
    "max_parameters": 20_000,
    "max_upload_bytes": 256 * 1024,
    "max_messages_per_second": 40,  # from the page to the server
    "max_frames_per_second": 30,
    "max_heatmap_units": 128,  # units drawn with their own heatmap
}
Variant = Literal["batch", "mini-batch", "online"]


class Settings(BaseModel):
    """Everything a session trains with (the page's controls)."""

    model_config = ConfigDict(extra="forbid")

    problem: str = Field("spiral", description="circle, xor, gaussians, spiral; plane, gauss (regression); upload")
    n: int = Field(500, ge=4, description="points generated")
    noise: float = Field(0.0, ge=0, le=0.5, description="noise, a share of the radius (0 to 0.5)")
    ratio: float = Field(0.5, ge=0.1, le=0.9, description="share of the points used for training")
    classes: int = Field(2, ge=2, le=MAX_CLASSES, description="classes of a classification problem")
    features: list[str] = Field(default_factory=lambda: ["x1", "x2"], description="inputs from x1, x2")
    hidden: list[int] = Field(default_factory=lambda: [4, 2], description="units per hidden layer")
    activation: str = Field("tanh", description="hidden activation")
    spec: str = Field("", description="a capas spec typed in (replaces hidden/activation)")
    loss: str = Field("", description="loss name; empty: by task")
    optimizer: str = Field("sgd", description="a capas optimizer")
    lr: float = Field(0.03, gt=0, le=10, description="learning rate")
    variant: Variant = Field("mini-batch", description="BackProp variant")
    batch_size: int = Field(10, ge=1, description="mini-batch size")
    regularization: Literal["none", "l1", "l2"] = "none"
    reg_rate: float = Field(0.0, ge=0, le=10, description="penalty lambda")
    engine: str = Field("auto", description="auto, backprop, autograd")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    fps: int = Field(15, ge=1, description="frames per second streamed to the page")

    @classmethod
    def parse(cls, record: dict[str, Any]) -> Settings:
        """Validate ``record`` and the limits; one PlaygroundError line otherwise."""
        try:
            settings = cls(**record)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in err.errors())
            raise PlaygroundError(f"invalid settings: {problems}") from None
        settings.check()
        return settings

    @property
    def regression(self) -> bool:
        return self.problem in REGRESSION

    @property
    def batch(self) -> int | str:
        """The TrainConfig batch size of the variant: ``"full"``, B, or 1."""
        return {"batch": "full", "online": 1}.get(self.variant, self.batch_size)

    def check(self) -> None:
        """Names and limits (the parameter limit is checked once the network is built)."""
        known = (*CLASSIFICATION, *REGRESSION, "upload")
        if self.problem not in known:
            raise PlaygroundError(f"unknown problem {self.problem!r}; choose one of {', '.join(known)}")
        for name, value, choices in (
            ("activation", self.activation, defaults.ACTIVATIONS),
            ("optimizer", self.optimizer, defaults.OPTIMIZERS),
            ("engine", self.engine, defaults.ENGINES),
        ):
            if value not in choices:
                raise PlaygroundError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
        if self.loss and self.loss not in defaults.LOSSES:
            raise PlaygroundError(f"unknown loss {self.loss!r}; choose one of {', '.join(defaults.LOSSES)}")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features or len(set(self.features)) != len(self.features):
            raise PlaygroundError(f"features must be distinct names among {', '.join(FEATURES)}; got {self.features}")
        if self.problem == "xor" and self.classes not in (2, 4):
            raise PlaygroundError("the xor problem has 2 classes (signs) or 4 (quadrants)")
        if self.n > LIMITS["max_points"]:
            raise LimitError(f"at most {LIMITS['max_points']} points in a playground session (asked for {self.n})")
        if len(self.hidden) > LIMITS["max_hidden_layers"]:
            raise LimitError(f"at most {LIMITS['max_hidden_layers']} hidden layers in a playground session")
        if any(not 1 <= units <= LIMITS["max_units"] for units in self.hidden):
            raise LimitError(f"a hidden layer has 1 to {LIMITS['max_units']} units in a playground session")
        if self.fps > LIMITS["max_frames_per_second"]:
            raise LimitError(f"at most {LIMITS['max_frames_per_second']} frames per second")
        if len(self.spec) > 500:
            raise LimitError("a spec of at most 500 characters")

    def dataset_options(self) -> dict[str, Any]:
        """``capas.data.load`` options of a generated problem (the registry's playground data)."""
        options: dict[str, Any] = {"problem": self.problem, "n": self.n, "noise": self.noise}
        if not self.regression:
            options["classes"] = self.classes
        options["features"] = ",".join(self.features)
        return options

    @property
    def dataset_name(self) -> str:
        return "playground-regression" if self.regression else "playground"

    @property
    def validation(self) -> float:
        """The share of the non-test points held out: the page's test points."""
        return round(1.0 - self.ratio, 6)

    def model_spec(self, inputs: int, outputs: int) -> str:
        """The spec typed in, or ``inputs-h1-...-outputs`` from the layer controls."""
        if self.spec.strip():
            return self.spec.strip()
        return "-".join(str(width) for width in (inputs, *self.hidden, outputs))

    def train_options(self) -> dict[str, Any]:
        """``TrainConfig`` options (capas.fit's keywords) of these settings."""
        options: dict[str, Any] = {
            "optimizer": self.optimizer,
            "lr": self.lr,
            "batch_size": self.batch,
            "engine": self.engine,
            "seed": self.seed,
            "device": "cpu",
        }
        if self.loss:
            options["loss"] = self.loss
        if self.regularization != "none" and self.reg_rate > 0:
            options[self.regularization] = self.reg_rate
        return options

    def command(self, spec: str, epochs: int, data_file: str | None = None) -> str:
        """The ``capas train`` command line that trains this session's run again."""
        words = ["capas", "train"]
        if data_file is None:
            words += ["--data", self.dataset_name]
            for key, value in self.dataset_options().items():
                words += ["--data-option", f"{key}={value}"]
        else:
            words += ["--data", data_file]
        words += ["--validation", f"{self.validation:g}", "--model", spec]
        words += ["--act", self.activation]
        options = self.train_options()
        words += ["--optimizer", options["optimizer"], "--lr", f"{options['lr']:g}"]
        words += ["--batch-size", str(options["batch_size"]), "--epochs", str(epochs), "--seed", str(self.seed)]
        words += ["--engine", self.engine, "--device", "cpu"]
        for name in ("loss", "l1", "l2"):
            if name in options:
                words += [f"--{name}", f"{options[name]:g}" if name != "loss" else options[name]]
        return shlex.join(words)

"""``TrainConfig``: every training option in one typed, validated, JSON-able object.

The whole config is written to the run directory's ``config.json`` and read back by
``--resume``, so a resumed run trains with exactly the options it started with. Unknown
keys are an error (a typo must not silently train with a default).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from capas import defaults
from capas.errors import TrainingError

Engine = Literal["auto", "fast", "backprop", "autograd"]
Resample = Literal["none", "over", "under", "smote"]
TargetEncoding = Literal["onehot", "tanh", "sigmoid"]
Pacing = Literal["linear", "root", "step"]


class TrainConfig(BaseModel):
    """Options of :func:`capas.fit` (see each field's description)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    loss: str | None = Field(None, description="loss name; None: the model's own loss, else cross_entropy")
    optimizer: str = Field(
        defaults.OPTIMIZER, description="torch.optim optimizer by name (capas.train.optim.OPTIMIZERS)"
    )
    lr: float | None = Field(
        None, gt=0, description="learning rate rho; None: the optimizer's default (capas.defaults)"
    )
    momentum: float | None = Field(None, ge=0, lt=1, description="momentum nu for sgd/rmsprop")
    optimizer_options: dict[str, Any] = Field(default_factory=dict, description="extra optimizer keyword arguments")
    scheduler: str | None = Field(None, description="LR schedule by name (capas.train.optim.SCHEDULERS)")
    scheduler_options: dict[str, Any] = Field(default_factory=dict, description="schedule keyword arguments")
    epochs: int = Field(defaults.EPOCHS, ge=1, description="maximum number of epochs")
    batch_size: int | Literal["full"] = Field(
        defaults.BATCH_SIZE, description="'full' = batch BackProp, 1 = incremental"
    )
    engine: Engine = Field(
        defaults.ENGINE,
        description="auto | fast (compiled whole-epoch kernel) | backprop (explicit delta rule) | autograd",
    )
    threads: int | None = Field(
        None, ge=1, description="torch threads; None: by the work (1 for small nets, all cores for large matmuls)"
    )
    seed: int = Field(defaults.SEED, ge=0, description="fixes split, init, shuffling, dropout, noise, resampling")
    device: str = Field(defaults.DEVICE, description="auto (cuda, mps, cpu) or a torch device string")
    amp: Literal["bf16", "fp16"] | None = Field(
        None,
        description="mixed precision: bf16 (CUDA, or the CPU's autocast) or fp16 (CUDA, with gradient scaling); "
        "None: off (True means fp16)",
    )
    sync_batchnorm: bool = Field(
        False, description="multi-process runs: BatchNorm statistics over the batches of every process"
    )
    l2: float = Field(0.0, ge=0, description="lambda of the L2 penalty lambda/2 sum w^2")
    l1: float = Field(0.0, ge=0, description="lambda of the L1 penalty lambda sum |w|")
    regularize_bias: bool = Field(False, description="also penalise biases (the slides' sum over all theta)")
    max_norm: float | None = Field(None, gt=0, description="cap on the L2 norm of each unit's incoming weights")
    input_noise: float = Field(0.0, ge=0, description="std of Gaussian noise added to training inputs")
    sparsity: Literal["l1", "kl"] | None = Field(
        None, description="activity penalty on hidden outputs (capas/train/activity.py); records active_units"
    )
    sparsity_weight: float = Field(0.0, ge=0, description="beta of the activity penalty (0: only the metric)")
    sparsity_target: float = Field(0.05, gt=0, lt=1, description="rho: the KL penalty's mean hidden activation")
    augment: str | None = Field(
        None, description="image augmentation of training batches, e.g. 'flip,rotate=15,crop=2,noise=0.1'"
    )
    clip_norm: float | None = Field(None, gt=0, description="clip the global gradient norm")
    clip_value: float | None = Field(None, gt=0, description="clip every gradient component to [-v, v]")
    tbptt: int | None = Field(
        None, ge=1, description="truncated BPTT: recurrent layers detach their state every k steps (None: full BPTT)"
    )
    patience: int | None = Field(None, ge=1, description="early stopping: epochs without improvement")
    monitor: str = Field("val_loss", description="history key watched by early stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as an improvement")
    restore_best: bool = Field(True, description="early stopping restores the best epoch's weights")
    target_loss: float | None = Field(None, description="stop once train_loss <= target_loss")
    min_improvement: float | None = Field(None, ge=0, description="stop when train_loss improves less than this")
    class_weights: Literal["balanced"] | list[float] | None = Field(None, description="per-class loss weights")
    resample: Resample = Field("none", description="resample the training split (imbalanced-learn)")
    target_encoding: TargetEncoding = Field("onehot", description="MSE/BCE target codes: 0/1, +-0.9, 0.1/0.9")
    curriculum: Literal["loss", "scores"] | None = Field(None, description="order samples easy -> hard")
    pacing: Pacing = Field("linear", description="how the available fraction of data grows")
    curriculum_start: float = Field(0.25, gt=0, le=1, description="fraction of the data available at epoch 0")
    curriculum_epochs: int | None = Field(None, ge=1, description="epochs until all data is available")
    frozen_layers: list[int | str] = Field(
        default_factory=list, description="layers (indices or names) kept frozen: requires_grad=False"
    )
    checkpoint_every: int = Field(1, ge=1, description="write a checkpoint every k epochs")
    grad_norms: bool = Field(True, description="record per-layer gradient norms in the history")
    warn_gradients: bool = Field(
        True, description="warn about vanishing/exploding gradients, saturated units, dead ReLUs (GradientMonitor)"
    )
    eval_batch_size: int = Field(4096, ge=1, description="batch size of validation/test passes")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_dtype(cls, value: Any) -> Any:
        """``True`` (the flag of earlier versions) is fp16 and ``False`` is off; torch's dtype
        names are accepted too."""
        if isinstance(value, bool):
            return "fp16" if value else None
        if isinstance(value, str):
            name = value.strip().lower()
            return {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "off": None, "none": None}.get(name, name)
        return value

    @field_validator("augment")
    @classmethod
    def _augment_spec(cls, value: str | None) -> str | None:
        """The spec must parse (capas.augment.parse_augment); it is kept in canonical form."""
        if value is None:
            return None
        from capas.augment import AugmentError, parse_augment

        try:
            return parse_augment(value).text() or None
        except AugmentError as err:
            raise ValueError(str(err)) from None

    @field_validator("batch_size")
    @classmethod
    def _positive_batch(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("batch_size must be >= 1 or 'full'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _lift_optimizer_options(cls, values: Any) -> Any:
        """``lr`` and ``momentum`` inside ``optimizer_options`` become the fields of the same
        name (torch would get them twice); the same option given both ways with different
        values is an error."""
        if not isinstance(values, dict) or not isinstance(values.get("optimizer_options"), dict):
            return values
        values = dict(values)
        extra = dict(values["optimizer_options"])
        for name in ("lr", "momentum"):
            if name in extra:
                value = extra.pop(name)
                given = values.get(name)
                if given is not None and given != value:
                    raise ValueError(
                        f"{name} is given twice ({name}={given} and optimizer_options {name}={value}); keep one of them"
                    )
                values[name] = value
        values["optimizer_options"] = extra
        return values

    @model_validator(mode="after")
    def _default_lr(self) -> TrainConfig:
        """An omitted learning rate is the optimizer's usual one (the table in capas.defaults),
        written into the config so config.json records the rate training really used."""
        if self.lr is None:
            self.lr = defaults.default_lr(self.optimizer)
        return self

    @classmethod
    def from_options(cls, **options: Any) -> TrainConfig:
        """Validate keyword options, turning pydantic's report into one TrainingError line."""
        try:
            return cls(**options)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors())
            raise TrainingError(f"invalid training option(s): {problems}") from None

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict; ``TrainConfig.from_options(**d)`` rebuilds the same config."""
        return self.model_dump(mode="json")

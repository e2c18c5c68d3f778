"""``capas pretrain``: greedy layer-wise pre-training of an MLP's hidden layers into a run dir.

Options in, one ``capas.api.pretrain`` call, lines out. Each hidden layer is a stage of the
training loop (``OUT/stage1``, ``OUT/stage2``...), so ``capas pretrain --resume OUT``
continues a killed pre-training to the weights an uninterrupted one would have reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas import defaults
from capas.cli import app
from capas.cli.options import refuse_with_resume
from capas.errors import SpecError

#: the only options --resume combines with (the rest come from OUT/pretrain.json)
_RESUME_OPTIONS = ("quiet", "as_json", "plots")


def parse_list(text: str | None, kind: type, option: str) -> list | None:
    """ "10,5,5" -> [10, 5, 5]; None stays None; anything else is a SpecError naming the option."""
    if text is None:
        return None
    try:
        values = [kind(item) for item in text.split(",")]
    except ValueError:
        raise SpecError(
            f"{option} takes comma-separated {kind.__name__} values, one per hidden layer (e.g. 10,5,5), got {text!r}"
        ) from None
    if any(value <= 0 for value in values):
        raise SpecError(f"{option} values must be positive, got {text!r}")
    return values


@app.command("pretrain")
def pretrain_command(
    ctx: typer.Context,
    data: str = typer.Option("digits", "--data", help="Registered dataset whose training inputs are used."),
    model: str = typer.Option(None, "--model", help="MLP spec, e.g. 64-100-100-10; its hidden layers are pre-trained."),
    method: str = typer.Option("rbm", "--method", help="rbm (a DBN), ae, dae (denoising) or sparse-ae."),
    epochs: int = typer.Option(10, "--epochs", help="Epochs per hidden layer (see --layer-epochs)."),
    layer_epochs: str | None = typer.Option(None, "--layer-epochs", help="Epochs per layer, e.g. 10,5,5."),
    lr: float | None = typer.Option(
        None, "--lr", help="Learning rate (default 0.1 for rbm, 0.01 on real-valued inputs; 0.003 for AEs)."
    ),
    layer_lr: str | None = typer.Option(None, "--layer-lr", help="Learning rate per layer, e.g. 0.05,0.02."),
    batch_size: int = typer.Option(32, "--batch-size", help="Mini-batch size."),
    k: int = typer.Option(1, "--k", help="Gibbs steps of CD-k (rbm)."),
    persistent: bool = typer.Option(False, "--persistent", help="Persistent CD (PCD-k) instead of CD-k (rbm)."),
    momentum: float = typer.Option(0.5, "--momentum", help="CD momentum (rbm)."),
    act: str = typer.Option(
        "sigmoid",
        "--act",
        help=f"Hidden activation of the network (rbm needs sigmoid): {', '.join(defaults.ACTIVATIONS)}.",
    ),
    loss: str | None = typer.Option(
        None,
        "--loss",
        help=f"Loss for fine-tuning, {', '.join(defaults.LOSSES)} (default: mse on regression data, "
        "else cross_entropy).",
    ),
    noise: float = typer.Option(0.3, "--noise", help="Masking probability of the denoising autoencoder (dae)."),
    sparsity_target: float = typer.Option(0.05, "--sparsity-target", help="Target mean activation (sparse-ae)."),
    sparsity_weight: float = typer.Option(0.1, "--sparsity-weight", help="Weight of the sparsity penalty (sparse-ae)."),
    unlabelled_extra: str | None = typer.Option(
        None, "--unlabelled-extra", help="Another dataset whose train+validation inputs (never test) are added."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of data split, initialisation, shuffling and sampling."),
    out: Path = typer.Option(
        None,
        "--out",
        help="Directory to write (model.json, weights.safetensors, "
        "pretrain.json, one stageN/ run directory per hidden layer).",
    ),
    plots: bool = typer.Option(False, "--plots", help="Also draw filters, reconstructions, samples and curves (PNG)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or per-layer lines."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary as the last stdout line."),
    resume: Path = typer.Option(None, "--resume", help="Continue the killed pre-training in this directory."),
) -> None:
    """Pre-train the hidden layers of MODEL greedily (RBMs or autoencoders); fine-tune with
    `capas train --data DATA --init-from OUT`."""
    if resume is not None:
        refuse_with_resume(ctx, _RESUME_OPTIONS, "pretrain.json")
        from capas.api.pretrain import resume_pretrain

        result = resume_pretrain(resume, quiet=quiet)
        out, data, method = resume, result.settings["data"], result.settings["method"]
    else:
        if model is None or out is None:
            raise SpecError(
                "capas pretrain needs --model (an MLP spec, e.g. 64-100-100-10) and --out DIR, or --resume DIR"
            )
        from capas.api.outputs import claim_output_dir
        from capas.api.pretrain import pretrain

        claim_output_dir(out, hint="choose another --out or --resume it")

        result = pretrain(
            data,
            model,
            method=method,
            epochs=epochs,
            layer_epochs=parse_list(layer_epochs, int, "--layer-epochs"),
            lr=lr,
            layer_lr=parse_list(layer_lr, float, "--layer-lr"),
            batch_size=batch_size,
            k=k,
            persistent=persistent,
            momentum=momentum,
            act=act,
            loss=loss,
            noise=noise,
            sparsity_target=sparsity_target,
            sparsity_weight=sparsity_weight,
            unlabelled_extra=unlabelled_extra,
            seed=seed,
            out=out,
            quiet=quiet,
        )
    if not quiet:
        for record in result.layers:
            first, last = record["curve"][0], record["curve"][-1]
            typer.echo(
                f"layer {record['layer'] + 1} ({record['n_in']}->{record['n_out']}, {record['kind']}): "
                f"reconstruction error {first['reconstruction_error']:.4f} -> "
                f"{last['reconstruction_error']:.4f} in {record['epochs']} epochs",
                err=True,
            )
    images = []
    if plots:
        from capas.diagnostics.pretrain_plots import plot_pretrain_run

        images = [str(path) for path in plot_pretrain_run(out)]
    typer.echo(f"pre-trained network written to {out}; fine-tune with: capas train --data {data} --init-from {out}")
    if as_json:
        summary = {
            "run_dir": str(out),
            "method": method,
            "plots": images,
            "layers": [
                {key: record[key] for key in ("layer", "n_in", "n_out", "kind", "epochs", "lr")}
                | {"reconstruction_error": record["curve"][-1]["reconstruction_error"]}
                for record in result.layers
            ],
        }
        typer.echo(json.dumps(summary))

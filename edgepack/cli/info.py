"""What edgepack knows: `inspect` a model, `devices`, `recipes`."""

from __future__ import annotations

import json

import click

from .common import split


@click.command()
@click.argument("model")
@click.option("--device", "devices", multiple=True, help="Device profiles to check (default: all).")
@click.option("--revision")
@click.option("--task")
@click.option("--allow-pickle", is_flag=True)
@click.option("--trust-remote-code", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def inspect(model, devices, revision, task, allow_pickle, trust_remote_code, as_json):
    """What MODEL is, which targets and precisions apply, and whether it fits each device."""
    from ..api import inspect as run_inspect

    info = run_inspect(model, split(devices) or None, revision, task, allow_pickle, trust_remote_code)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    params = f"{info['parameters']:,}" if info["parameters"] else "unknown"
    click.echo(f"model        {info['model']} ({info['origin']}, revision {info['revision']})")
    click.echo(f"task         {info['task']} ({', '.join(info['architectures'] or [])})")
    click.echo(f"tasks        {', '.join(info['applicable_tasks']) or 'none detected'} (what its files say it does)")
    fits = info["recipes"]
    click.echo(f"recipe       {fits[0] if fits else 'none'}" + (f" (also: {', '.join(fits[1:])})" if fits[1:] else ""))
    click.echo(f"parameters   {params}, {info['size_class']}")
    click.echo(f"license      {info['license'] or 'not stated'}; commercial use: {info['commercial_use']}")
    for target, about in info["targets"].items():
        what = ", ".join(about["precisions"]) if about["supported"] else f"not exportable: {about['reason']}"
        click.echo(f"target       {target}: {what}")
    for device, fits in info["devices"].items():
        cells = [f"{p} {'fits' if f and f['fits'] else 'does not fit' if f else '?'}" for p, f in fits.items()]
        click.echo(f"device       {device}: {', '.join(cells)}")


@click.group()
def devices():
    """Device profiles."""


@devices.command("list")
def devices_list():
    from ..devices import list_profiles, load_profile

    for name in list_profiles():
        click.echo(f"{name:24} {load_profile(name).display_name}")


@devices.command("show")
@click.argument("name")
def devices_show(name):
    import yaml

    from .estimate import error_lines, resolve_profile

    profile = resolve_profile(name)
    click.echo(yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True), sort_keys=False).rstrip())
    click.echo("estimate_error:  # the calibrated estimate's error on models it was not fitted on")
    for line in error_lines(profile):
        click.echo(f"  {line}")


@click.group()
def recipes():
    """Recipes: defaults for common tasks."""


@recipes.command("list")
def recipes_list():
    """Task, model, targets and devices of every shipped recipe."""
    from ..catalog import recipes as shipped

    rows = [(r.name, r.task, r.model or "(any model of the task)", ",".join(r.targets), ",".join(r.devices) or "-")
            for r in shipped()]
    widths = [max(len(row[i]) for row in rows + [_RECIPE_COLUMNS]) for i in range(len(_RECIPE_COLUMNS))]
    for row in [_RECIPE_COLUMNS] + rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


_RECIPE_COLUMNS = ("name", "task", "model", "targets", "devices")


@recipes.command("show")
@click.argument("name")
def recipes_show(name):
    """The recipe NAME and whether its model is available offline here."""
    import yaml

    from ..catalog import describe

    click.echo(yaml.safe_dump(describe(name), sort_keys=False, width=120).rstrip())

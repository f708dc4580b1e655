"""``zoo report RUN_DIR|CKPT``: how to reproduce a run, and what threatens reproducing it.

Reads what ``zoo fit`` recorded (``config.yaml``, ``env.json``, ``data.json`` in the run folder; the same in a
checkpoint's ``zoo_metadata``) and compares it with now: the working tree it ran from, whether it was seeded,
settings that are not deterministic on a GPU, the data as it is today (re-read and fingerprinted), and the
installed packages.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import MissingFileError

__all__ = ["RunRecord", "build_report", "format_report", "read_run", "run_report_command"]


@dataclass
class RunRecord:
    """What a run recorded about itself.

    Attributes:
        source: The run folder or checkpoint the record was read from.
        config: The resolved config (parsed YAML), if recorded.
        config_file: The saved ``config.yaml`` that ``zoo fit --config`` can run again, if there is one.
        environment: ``env.json`` (:func:`zoo.provenance.run_environment`).
        data: ``data.json`` (:meth:`zoo.data.ZooDataModule.fingerprint`).
    """

    source: Path
    config: dict[str, Any] | None = None
    config_file: Path | None = None
    environment: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def read_run(path: str | Path) -> RunRecord:
    """Read a run folder (``runs/<recipe>/version_N``) or a checkpoint of one.

    Raises:
        MissingFileError: When ``path`` does not exist, or holds neither a run's records nor a checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        record = RunRecord(path)
        _read_folder(path, record)
        if record.config is None and record.environment is None:
            raise MissingFileError(f"{path} is not a zoo run folder (no config.yaml or env.json in it)")
        return record
    if path.is_file():
        from zoo.checkpoints import METADATA_KEY, check_file, load_safely

        stored = (load_safely(check_file(path), mmap=True).get(METADATA_KEY)) or {}
        recipe = stored.get("recipe") or {}
        record = RunRecord(
            path,
            config=yaml.safe_load(recipe["text"]) if recipe.get("text") else None,
            environment=stored.get("environment"),
            data=stored.get("data_fingerprint"),
        )
        folder = path.resolve().parent.parent
        if (folder / "config.yaml").is_file():
            record.config_file = folder / "config.yaml"
        if record.environment is None:
            record.notes.append("the checkpoint records no environment (written before zoo recorded one)")
        return record
    raise MissingFileError(f"{path} does not exist; give a run folder (runs/<recipe>/version_N) or a checkpoint")


def _read_folder(folder: Path, record: RunRecord) -> None:
    config = folder / "config.yaml"
    if config.is_file():
        record.config, record.config_file = yaml.safe_load(config.read_text()), config
    for name, attribute in (("env.json", "environment"), ("data.json", "data")):
        file = folder / name
        if file.is_file():
            setattr(record, attribute, json.loads(file.read_text()))
    resumes = sorted(p.name for p in folder.glob("config.resume-*.yaml"))
    if resumes:
        record.notes.append(f"resumed {len(resumes)} time(s): {', '.join(resumes)} beside config.yaml")


def build_report(record: RunRecord, check_data: bool = True) -> dict[str, Any]:
    """The reproduction recipe and the threats to it, as plain data.

    Returns:
        ``{"source", "reproduce": {"command", "commit", "seed", "zoo_version", "data", "environment"},
        "threats": [str], "packages": [{"package", "run", "now"}], "data_check": str, "notes": [str]}``.
    """
    env = record.environment or {}
    git = env.get("git") or {}
    config = record.config or {}
    commit = git.get("commit")
    command = f"zoo fit --config {record.config_file}" if record.config_file else None
    reproduce = {
        "command": command,
        "checkout": f"git checkout {commit}" if commit else None,
        "commit": commit,
        "seed": env.get("seed", config.get("seed_everything")),
        "zoo_version": (env.get("zoo") or {}).get("version"),
        "data": {k: (record.data or {}).get(k) for k in ("dataset", "content_sha256", "splits")}
        if record.data
        else None,
        "environment": {
            "python": env.get("python"),
            "torch": (env.get("torch") or {}).get("version"),
            "cuda": (env.get("torch") or {}).get("cuda"),
            "cpu": (env.get("hardware") or {}).get("cpu_model"),
            "gpus": [g.get("name") for g in (env.get("hardware") or {}).get("gpus") or []],
            "original_command": env.get("command"),
        },
    }
    threats = _threats(env, config)
    packages = _package_diff(env.get("packages") or {})
    if packages:
        threats.append(f"{len(packages)} package version(s) differ from the ones the run used (table below)")
    data_check = "not checked"
    if check_data and record.data and config.get("data"):
        data_check, changes = _check_data(config["data"], record.data)
        if changes:
            threats.append(f"the data changed since the run: {'; '.join(changes)}")
    if not record.environment:
        threats.append("no environment recorded: the code, packages and machine of the run are unknown")
    return {
        "source": str(record.source),
        "reproduce": reproduce,
        "threats": threats,
        "packages": packages,
        "data_check": data_check,
        "notes": record.notes,
    }


def _threats(env: dict[str, Any], config: dict[str, Any]) -> list[str]:
    threats = []
    git = env.get("git") or {}
    if env and git.get("commit") is None:
        threats.append("not run from a git repository: the code that produced it is not recorded")
    if git.get("dirty"):
        threats.append(
            f"the working tree had uncommitted changes (diff sha256 {str(git.get('diff_sha256'))[:12]}...): the "
            "commit alone does not reproduce the run"
        )
    if env and env.get("seed") is None and config.get("seed_everything") in (None, False):
        threats.append("unseeded: the run drew its initial weights, data order and augmentation at random")
    trainer = config.get("trainer") or {}
    on_gpu = bool((env.get("hardware") or {}).get("gpus")) and trainer.get("accelerator") not in ("cpu",)
    if on_gpu and trainer.get("deterministic") not in (True, "warn"):
        threats.append("trainer.deterministic was off on a GPU: some kernels (atomics, cuDNN) vary run to run")
    if on_gpu and trainer.get("benchmark"):
        threats.append("trainer.benchmark was on: cuDNN picked kernels by timing, which can differ between runs")
    return threats


def _package_diff(recorded: dict[str, Any]) -> list[dict[str, Any]]:
    from zoo.provenance import packages

    now = packages()
    return [
        {"package": name, "run": version, "now": now.get(name)}
        for name, version in sorted(recorded.items())
        if name in now and now[name] != version
    ]


def _check_data(data_config: dict[str, Any], recorded: dict[str, Any]) -> tuple[str, list[str]]:
    """Re-read the run's data and compare its fingerprint with the recorded one."""
    from zoo.data.fingerprint import fingerprint_changes

    class_path = str(data_config.get("class_path", ""))
    module_name, _, name = class_path.rpartition(".")
    try:
        data = getattr(import_module(module_name), name)(**(data_config.get("init_args") or {}))
        data.prepare_data()
        data.setup("fit")
        now = data.fingerprint()
    except Exception as err:  # any failure to re-read the data is reported, not raised
        return f"could not re-read the data ({type(err).__name__}: {err})", []
    changes = fingerprint_changes(recorded, now)
    return ("changed" if changes else "unchanged (same content hash)"), changes


def format_report(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    reproduce = report["reproduce"]
    lines = [f"run  {report['source']}", "", "reproduce:"]
    if reproduce["checkout"]:
        lines.append(f"  {reproduce['checkout']}")
    lines.append(f"  {reproduce['command'] or '(no config.yaml recorded: the recipe text is in the checkpoint)'}")
    lines.append(f"  seed {reproduce['seed']}    zoo {reproduce['zoo_version']}")
    if reproduce["data"]:
        data = reproduce["data"]
        lines.append(f"  data {data['dataset']}  content {str(data['content_sha256'])[:16]}  splits {data['splits']}")
    environment = reproduce["environment"]
    gpus = ", ".join(environment["gpus"]) or "no GPU"
    lines.append(f"  python {environment['python']}  torch {environment['torch']}  {environment['cpu']}  {gpus}")
    if environment["original_command"]:
        lines.append(f"  ran as: {environment['original_command']}")
    lines += ["", f"data now: {report['data_check']}", ""]
    if report["threats"]:
        lines.append("threats to reproducing it:")
        lines += [f"  ! {threat}" for threat in report["threats"]]
    else:
        lines.append("threats to reproducing it: none found")
    if report["packages"]:
        width = max(len(row["package"]) for row in report["packages"])
        lines += ["", f"  {'package':<{width}}  {'run':<14}  now"]
        lines += [f"  {r['package']:<{width}}  {r['run'] or '-':<14}  {r['now'] or '-'}" for r in report["packages"]]
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def run_report_command(argv: list[str]) -> None:
    """``zoo report PATH [--json] [--no_data_check]``."""
    parser = argparse.ArgumentParser(
        prog="zoo report", description="How to reproduce a run, and what threatens reproducing it."
    )
    parser.add_argument("path", help="a run folder (runs/<recipe>/version_N) or a checkpoint")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--no_data_check", action="store_true", help="do not re-read the data to compare its fingerprint"
    )
    args = parser.parse_args(argv)
    report = build_report(read_run(args.path), check_data=not args.no_data_check)
    print(json.dumps(report, indent=2) if args.json else format_report(report))

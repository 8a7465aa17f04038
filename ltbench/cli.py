"""ltbench command line: run | sweep | table | list | data check | cache ls / rm."""
import argparse
import os
import sys
from pathlib import Path

from ltbench import __version__
from ltbench.errors import UserError

LISTABLE = ("methods", "datasets", "backbones", "losses", "samplers")


def _add_data_options(parser):
    parser.add_argument("--data-root", help="folder the split files' image paths are relative to")
    parser.add_argument("--split-dir", help="folder with the split files (default: the data root)")
    parser.add_argument("--cfg-options", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. train.lr=0.01 dataset.imbalance_ratio=100")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltbench", description="Long-tailed recognition benchmarks for CLIP-style models.")
    parser.add_argument("--version", action="version", version=f"ltbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run one method on one dataset and write its record")
    run.add_argument("--method", required=True)
    run.add_argument("--dataset", required=True)
    run.add_argument("--backbone", help="e.g. RN50:openai, ViT-B-16:openai, RN50:none, MODEL:/path/ckpt.pt, tiny")
    run.add_argument("--seed", type=int)
    _add_data_options(run)
    run.add_argument("--out", default="results", help="results folder (default: results)")
    run.add_argument("--skip-existing", action="store_true", help="do nothing if this run's record exists")
    run.add_argument("--resume", action="store_true", help="continue training from the last epoch checkpoint")
    run.add_argument("--device", help="cpu, cuda, cuda:1 (default: auto)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--save-logits", action="store_true",
                     help="also save test / val logits beside the record (<record>.logits.npz), for "
                          "ensembles and sample-by-sample comparisons")

    table = commands.add_parser("table", help="aggregate run records into leaderboard tables")
    table.add_argument("--dataset", help="only this dataset (default: every dataset with records)")
    table.add_argument("--format", choices=("md", "csv", "latex"), default="md")
    table.add_argument("--results", default="results", help="results folder (default: results)")
    table.add_argument("--shot-rule", choices=("standard", "oltr"),
                       help="regroup many/medium/few under this rule (default: as recorded)")
    reported = table.add_mutually_exclusive_group()
    reported.add_argument("--reported", metavar="PATH",
                          help="published numbers for the Reported column (default: benchmarks/reported.yaml; "
                               "the column stays empty if that file is not there)")
    reported.add_argument("--no-reported", action="store_true", help="leave the Reported column out")

    listing = commands.add_parser("list", help="list registered methods, datasets, backbones, ...")
    listing.add_argument("what", nargs="?", choices=LISTABLE, default="methods")

    data = commands.add_parser("data", help="dataset tools")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    check = data_commands.add_parser("check", help="count images, classes and missing files per split")
    check.add_argument("dataset")
    _add_data_options(check)
    check.add_argument("--shot-rule", choices=("standard", "oltr"), default="standard")

    sweep = commands.add_parser("sweep", help="run every (method, dataset, backbone, seed) of a suite YAML")
    sweep.add_argument("suite", help="a suite YAML file, or the name of one in benchmarks/suites/")
    _add_data_options(sweep)
    sweep.add_argument("--out", default="results", help="results folder (default: results)")
    sweep.add_argument("--force", action="store_true", help="rerun entries whose record exists (default: skip them)")
    sweep.add_argument("--resume", action="store_true",
                       help="continue interrupted entries from their last epoch checkpoint")
    sweep.add_argument("--dry-run", action="store_true", help="print the grid and what would run, run nothing")
    sweep.add_argument("--device", help="cpu, cuda, cuda:1 (default: auto)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bars")
    sweep.add_argument("--save-logits", action="store_true", help="as in `ltbench run`: logits beside each record")
    sweep.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local: one entry after another here; slurm: one job per entry (needs submitit)")
    slurm = sweep.add_argument_group("slurm launcher (--launcher slurm)")
    slurm.add_argument("--partition", help="Slurm partition (required with --launcher slurm)")
    slurm.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per job (default: 1)")
    slurm.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per job (default: 8)")
    slurm.add_argument("--mem-gb", type=float, help="memory per job (default: the partition's)")
    slurm.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit per job (default: 1440)")
    slurm.add_argument("--slurm-array-parallelism", type=int, metavar="K", help="at most K jobs running at once")
    slurm.add_argument("--slurm-additional", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="other sbatch options, e.g. account=proj qos=high constraint=a100")

    cache = commands.add_parser("cache", help="list or remove feature cache entries")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    cache_ls = cache_commands.add_parser("ls", help="one line per entry: key, kind, shape, size, date, inputs")
    cache_rm = cache_commands.add_parser("rm", help="remove entries (.npy and .json together) and stray temp files")
    cache_rm.add_argument("keys", nargs="*", metavar="KEY_PREFIX", help="entries to remove, by key prefix")
    cache_rm.add_argument("--kind", help="only entries of this kind (image_features, image_tokens, "
                                         "text_classifier, temp)")
    cache_rm.add_argument("--older-than", type=float, metavar="DAYS", help="only entries not modified for DAYS days")
    cache_rm.add_argument("--all", action="store_true", help="allow removing every entry (with no other filter)")
    cache_rm.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    for cache_parser in (cache_ls, cache_rm):
        cache_parser.add_argument("--cache-dir", help="cache root (default: $LTBENCH_CACHE or ~/.cache/ltbench)")
    return parser


def resolve_run_config(method, dataset, args):
    from ltbench import registry
    from ltbench.config import resolve_config

    method_cls = registry.get(registry.METHODS, method, listing="methods")
    registry.get(registry.DATASETS, dataset, listing="datasets")
    overrides = {
        "backbone.clip": getattr(args, "backbone", None),
        "seed": getattr(args, "seed", None),
        "dataset.root": args.data_root,
        "dataset.split_dir": args.split_dir,
        "runtime.device": getattr(args, "device", None),
        "runtime.progress": False if getattr(args, "no_progress", False) else None,
        "runtime.save_logits": True if getattr(args, "save_logits", False) else None,
    }
    return resolve_config(method, method_cls, dataset, overrides, args.cfg_options)


def command_run(args) -> int:
    from ltbench import runner
    from ltbench.engine import distributed
    from ltbench.metrics import format_scores

    cfg = resolve_run_config(args.method, args.dataset, args)
    path, record = runner.run(cfg, Path(args.out), skip_existing=args.skip_existing, resume=args.resume)
    if not distributed.is_main():  # the other processes of a torchrun launch stay quiet
        return 0
    if record is None:
        print(f"skipped: {path} exists (--skip-existing)")
        return 0
    print(f"{record['method']} on {record['dataset']} ({record['backbone']}, seed {record['seed']}, "
          f"{record['eval_split']}): {format_scores(record['metrics'])}  [{record['timings']['total']:.1f}s]")
    print(f"record: {path}")
    return 0


def _reported_entries(args):
    """Published numbers for the table's Reported column; None: no column (--no-reported)."""
    from ltbench.reported import default_reported_path, load_reported

    if args.no_reported:
        return None
    if args.reported is not None:
        return load_reported(args.reported)  # a path given that is not there is an error
    path = default_reported_path()
    return load_reported(path) if path.exists() else []


def command_table(args) -> int:
    from ltbench import results, tables

    records = [record for _, record in results.load_records(args.results)]
    datasets = [args.dataset] if args.dataset else tables.datasets_in(records)
    if not datasets:
        raise UserError(f"no run records under {Path(args.results) / 'runs'}; run `ltbench run ...` first "
                        "or pass --results DIR")
    reported = _reported_entries(args)  # before any table is written: a bad file fails first
    for dataset in datasets:
        rows = tables.leaderboard_rows(records, dataset, shot_rule=args.shot_rule)
        if not rows:
            known = ", ".join(tables.datasets_in(records)) or "none"
            raise UserError(f"no run records for dataset '{dataset}' under {args.results} (datasets with records: {known})")
        if reported is not None:
            tables.join_reported(rows, reported, dataset)
        text = tables.render_table(rows, args.format)
        path = tables.write_table(args.results, dataset, text, args.format)
        print(f"## {dataset}\n\n{text}\n(written to {path})\n")
    return 0


def command_list(args) -> int:
    from ltbench import registry

    if args.what == "backbones":
        from ltbench.models.clip import list_open_clip_backbones

        rows = [("tiny", "tiny CLIP shipped with ltbench, random init (offline runs and tests)"),
                ("MODEL:none", "any open_clip model name (e.g. RN50:none), random init"),
                ("MODEL:/path/to/checkpoint.pt", "any open_clip model with local weights"),
                ("timm:NAME[:none]", "a timm vision model (vision-only methods), ImageNet weights or random init")]
        rows += list_open_clip_backbones()
    else:
        name = {"methods": "METHODS", "datasets": "DATASETS", "losses": "LOSSES", "samplers": "SAMPLERS"}[args.what]
        rows = registry.describe(getattr(registry, name))
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def command_data_check(args) -> int:
    from ltbench import registry
    from ltbench.config import resolve_dataset_config
    from ltbench.data import build_dataset
    from ltbench.data.check import check_report

    registry.get(registry.DATASETS, args.dataset, listing="datasets")
    overrides = {"dataset.root": args.data_root, "dataset.split_dir": args.split_dir}
    cfg = resolve_dataset_config(args.dataset, overrides, args.cfg_options)
    dataset = build_dataset(cfg["dataset"], require_all_splits=False)
    print(check_report(dataset, shot_rule=args.shot_rule))
    return 0


def command_sweep(args) -> int:
    from ltbench import sweep
    from ltbench.suite import find_suite, load_suite

    suite = load_suite(find_suite(args.suite))
    options = sweep.SweepOptions(out=args.out, data_root=args.data_root, split_dir=args.split_dir,
                                 cfg_options=tuple(args.cfg_options), device=args.device,
                                 progress=not args.no_progress, save_logits=args.save_logits,
                                 skip_existing=not args.force, resume=args.resume)
    if args.dry_run:
        return sweep.print_plan(suite, options)
    if args.launcher == "local":
        return sweep.run_locally(suite, options)
    if not args.partition:
        raise UserError("--launcher slurm needs --partition NAME")
    additional = dict(option.partition("=")[::2] for option in args.slurm_additional)
    if any(not key or not value for key, value in additional.items()):
        raise UserError("--slurm-additional: expected KEY=VALUE such as account=myproject")
    slurm = sweep.SlurmOptions(partition=args.partition, gpus_per_node=args.gpus_per_node,
                               cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, timeout_min=args.timeout_min,
                               array_parallelism=args.slurm_array_parallelism, additional=additional)
    return sweep.submit_to_slurm(suite, options, slurm)[0]


def command_cache(args) -> int:
    from ltbench.engine import cache_admin
    from ltbench.engine.cache import ArrayCache

    root = ArrayCache(args.cache_dir).root
    if args.cache_command == "ls":
        print(cache_admin.list_report(root))
    else:
        print(cache_admin.remove_report(root, args.keys, kind=args.kind, older_than_days=args.older_than,
                                        everything=args.all, dry_run=args.dry_run))
    return 0


COMMANDS = {"run": command_run, "table": command_table, "list": command_list, "sweep": command_sweep,
            "cache": command_cache}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    handler = command_data_check if args.command == "data" else COMMANDS[args.command]
    try:
        return handler(args)
    except UserError as error:
        print(f"ltbench: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("ltbench: interrupted; rerun the same command with --resume to continue from the last "
              "epoch checkpoint", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ltbench table | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

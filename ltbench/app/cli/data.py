"""`ltbench data check`: images, classes and missing files per split, without decoding an image."""
from ltbench.app.cli.common import add_data_options


def register(commands):
    data = commands.add_parser("data", help="dataset tools")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    check = data_commands.add_parser("check", help="count images, classes and missing files per split")
    check.add_argument("dataset")
    add_data_options(check)
    check.add_argument("--shot-rule", choices=("standard", "oltr"), default="standard")
    check.set_defaults(handler=command_check)


def command_check(args) -> int:
    from ltbench.config import parse_cfg_options, resolve_dataset_config
    from ltbench.core import registry
    from ltbench.data import build_dataset
    from ltbench.data.check import check_report
    from ltbench.engine.method import Method

    registry.get(registry.DATASETS, args.dataset)
    overrides = {"dataset.root": args.data_root, "dataset.split_dir": args.split_dir}
    # The common options (Method's) and the dataset's, checked as a run checks them.
    cfg = resolve_dataset_config(args.dataset, Method, overrides, parse_cfg_options(args.cfg_options))
    dataset = build_dataset(cfg["dataset"], require_all_splits=False, complete=True)
    print(check_report(dataset, shot_rule=args.shot_rule))
    return 0

"""Options several subcommands share, and the RunRequest a run's flags make."""
from ltbench.config import RunRequest, parse_cfg_options, runtime_overrides


def add_data_options(parser):
    parser.add_argument("--data-root", help="folder the split files' image paths are relative to")
    parser.add_argument("--split-dir", help="folder with the split files (default: the data root)")
    parser.add_argument("--cfg-options", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. train.lr=0.01 dataset.imbalance_ratio=100")


def add_runtime_options(parser):
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_request(args) -> RunRequest:
    return RunRequest(
        method=args.method, dataset=args.dataset, backbone=args.backbone, seed=args.seed,
        overrides=runtime_overrides(args.data_root, args.split_dir, args.device, not args.no_progress,
                                    args.save_logits),
        options=parse_cfg_options(args.cfg_options))

"""`ltbench sweep`: every entry of a suite, here or as Slurm jobs."""
from ltbench.app.cli.common import add_data_options, add_runtime_options
from ltbench.core.errors import UserError


def register(commands):
    sweep = commands.add_parser("sweep", help="run every (method, dataset, backbone, seed) of a suite YAML")
    sweep.add_argument("suite", help="a suite YAML file, or the name of one in benchmarks/suites/")
    add_data_options(sweep)
    sweep.add_argument("--out", default="results", help="results folder (default: results)")
    sweep.add_argument("--force", action="store_true", help="rerun entries whose record exists (default: skip them)")
    sweep.add_argument("--resume", action="store_true",
                       help="continue interrupted entries from their last epoch checkpoint")
    sweep.add_argument("--dry-run", action="store_true", help="print the grid and what would run, run nothing")
    add_runtime_options(sweep)
    sweep.add_argument("--save-logits", nargs="?", const=True, default=False, metavar="FORMAT",
                       help="as in `ltbench run`: logits beside each record (float32, float16 or topK)")
    sweep.add_argument("--protocol", metavar="NAME",
                       help="compare under a protocol (benchmarks/protocols/NAME.yaml, e.g. equal_budget): every "
                            "method tuned on val with the same budget, then its best settings with several seeds")
    sweep.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local: one entry after another here; slurm: one job per entry (needs submitit)")
    add_slurm_options(sweep)
    sweep.set_defaults(handler=command)


def add_slurm_options(parser):
    slurm = parser.add_argument_group("slurm launcher (--launcher slurm)")
    slurm.add_argument("--partition", help="Slurm partition (required with --launcher slurm)")
    slurm.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per job (default: 1)")
    slurm.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per job (default: 8)")
    slurm.add_argument("--mem-gb", type=float, help="memory per job (default: the partition's)")
    slurm.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit per job (default: 1440)")
    slurm.add_argument("--slurm-array-parallelism", type=int, metavar="K", help="at most K jobs running at once")
    slurm.add_argument("--slurm-additional", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="other sbatch options, e.g. account=proj qos=high constraint=a100")


def slurm_options(args):
    """The SlurmOptions of the slurm flags; one-line errors for a missing partition or a bad KEY=VALUE."""
    from ltbench.app import sweep

    if not args.partition:
        raise UserError("--launcher slurm needs --partition NAME")
    additional = dict(option.partition("=")[::2] for option in args.slurm_additional)
    if any(not key or not value for key, value in additional.items()):
        raise UserError("--slurm-additional: expected KEY=VALUE such as account=myproject")
    return sweep.SlurmOptions(partition=args.partition, gpus_per_node=args.gpus_per_node,
                              cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, timeout_min=args.timeout_min,
                              array_parallelism=args.slurm_array_parallelism, additional=additional)


def command(args) -> int:
    from ltbench.app import sweep
    from ltbench.app.suite import find_suite, load_suite
    from ltbench.config import parse_cfg_options

    suite = load_suite(find_suite(args.suite))
    options = sweep.SweepOptions(out=args.out, data_root=args.data_root, split_dir=args.split_dir,
                                 cfg_options=parse_cfg_options(args.cfg_options), device=args.device,
                                 progress=not args.no_progress, save_logits=args.save_logits,
                                 skip_existing=not args.force, resume=args.resume)
    if args.protocol:
        from ltbench.app.protocol import find_protocol, load_protocol, run_protocol

        protocol = load_protocol(find_protocol(args.protocol))
        if args.dry_run:
            raise UserError("--protocol runs without --dry-run (`ltbench tune` checks each study before any trial)")
        return run_protocol(suite, protocol, options, slurm=slurm_options(args) if args.launcher == "slurm" else None)
    if args.dry_run:
        return sweep.print_plan(suite, options, launcher=args.launcher)
    if args.launcher == "local":
        return sweep.run_locally(suite, options)
    slurm = slurm_options(args)
    return sweep.submit_to_slurm(suite, options, slurm)[0]

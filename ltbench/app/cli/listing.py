"""`ltbench list`: what is registered (methods, datasets, losses, samplers) and backbone names."""
LISTABLE = ("methods", "datasets", "backbones", "losses", "samplers")


def register(commands):
    listing = commands.add_parser("list", help="list registered methods, datasets, backbones, ...")
    listing.add_argument("what", nargs="?", choices=LISTABLE, default="methods")
    listing.add_argument("--options", metavar="METHOD",
                         help="with `methods`: METHOD's options (value, source, what it takes, meaning); "
                              "'common': the options every method has")
    listing.add_argument("--dataset", help="with --options: the values a run on this dataset resolves to")
    listing.add_argument("--backbone", help="with --options and --dataset: ... and on this backbone")
    listing.set_defaults(handler=command)


def _rows(what: str):
    from ltbench.core import registry

    if what == "backbones":
        from ltbench.models.factory import list_pretrained_backbones

        return [("tiny", "tiny CLIP shipped with ltbench, random init (offline runs and tests)"),
                ("MODEL:none", "any open_clip model name (e.g. RN50:none), random init"),
                ("MODEL:/path/to/checkpoint.pt", "any open_clip model with local weights"),
                ("timm:NAME[:none]", "a timm vision model (vision-only methods), ImageNet weights or random init"),
                *list_pretrained_backbones()]
    name = {"methods": "METHODS", "datasets": "DATASETS", "losses": "LOSSES", "samplers": "SAMPLERS"}[what]
    return registry.describe(getattr(registry, name))


def _options(args) -> int:
    from ltbench.config.describe import COMMON_NAME, common_rows, option_rows, text_table
    from ltbench.core.errors import UserError

    if args.what != "methods":
        raise UserError(f"--options lists a method's options: ltbench list methods --options METHOD (not {args.what})")
    if args.options == COMMON_NAME:
        from ltbench.engine.method import Method

        print(text_table(COMMON_NAME, common_rows(Method)))
        return 0
    print(text_table(args.options, option_rows(args.options, args.dataset, args.backbone), args.dataset,
                     args.backbone))
    return 0


def command(args) -> int:
    if args.options:
        return _options(args)
    if args.dataset or args.backbone:
        from ltbench.core.errors import UserError

        raise UserError("--dataset and --backbone go with --options METHOD")
    rows = _rows(args.what)
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0

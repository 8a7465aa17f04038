"""`ltbench list`: what is registered (methods, datasets, losses, samplers) and backbone names."""
LISTABLE = ("methods", "datasets", "backbones", "losses", "samplers")


def register(commands):
    listing = commands.add_parser("list", help="list registered methods, datasets, backbones, ...")
    listing.add_argument("what", nargs="?", choices=LISTABLE, default="methods")
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


def command(args) -> int:
    rows = _rows(args.what)
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0

"""`ltbench weights ls | fetch`: pretrained backbone weights in the local caches, for offline nodes.

On a cluster, run `ltbench weights fetch BACKBONE...` on a machine with internet (a login node)
that shares the cache with the compute nodes (HF_HOME / HF_HUB_CACHE on a shared disk); a run on
an offline node then loads the weights from there without a request.
"""


def register(commands):
    weights = commands.add_parser("weights", help="show or fetch the pretrained backbone weights runs load")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True)
    ls = weights_commands.add_parser("ls", help="whether a run would find each backbone's weights here, and where")
    ls.add_argument("backbones", nargs="*", metavar="BACKBONE",
                    help="backbones to check (default: the pretrained ones the configs and suites name)")
    ls.add_argument("--all", action="store_true", help="every open_clip model with pretrained weights")
    fetch = weights_commands.add_parser("fetch", help="download backbones' weights into the local cache "
                                                      "(on a machine with internet)")
    fetch.add_argument("backbones", nargs="+", metavar="BACKBONE", help="e.g. ViT-B-16:openai RN50:openai")
    weights.set_defaults(handler=command)


def known_backbones() -> list:
    """The backbones ltbench's configs name: the default (backbone.clip) and every suite's, in order."""
    from ltbench.app.suite import suites_dir
    from ltbench.config import benchmarks_dir, load_yaml

    names = [load_yaml(benchmarks_dir() / "defaults.yaml")["backbone"]["clip"]]
    for path in sorted(suites_dir().glob("*.yaml")):
        names += [name for name in load_yaml(path).get("backbones") or [] if isinstance(name, str)]
    return list(dict.fromkeys(names))


def _ls(args) -> int:
    from ltbench.models import weights
    from ltbench.models.factory import list_pretrained_backbones

    if args.backbones:
        names = args.backbones
    elif args.all:
        names = [name for name, _ in list_pretrained_backbones()]
    else:
        names = known_backbones()
    rows = []
    for name in names:
        state = weights.status(name)
        if not state.needs_weights:
            if args.backbones:  # asked for by name: say so; the default listings show pretrained ones only
                rows.append((name, "no download", "random init or a local checkpoint"))
            continue
        rows.append((name, "found" if state.found else "missing", state.where()))
    width = max([len(name) for name, _, _ in rows] + [8])
    print(f"{'backbone':<{width}}  {'weights':<11}  where")
    for name, found, where in rows:
        print(f"{name:<{width}}  {found:<11}  {where}")
    missing = [name for name, found, _ in rows if found == "missing"]
    if missing:
        print(f"missing weights load from the network on first use; offline, fetch them on a machine with "
              f"internet first: ltbench weights fetch {' '.join(missing)}")
    return 0


def _fetch(args) -> int:
    from ltbench.core.errors import UserError
    from ltbench.models import weights

    failed = []
    for name in args.backbones:
        try:
            before = weights.status(name)
            after = weights.fetch(name)
        except UserError as error:
            print(f"{name}: failed: {error}")
            failed.append(name)
            continue
        if not after.needs_weights:
            print(f"{name}: nothing to fetch (random init or a local checkpoint)")
        else:
            print(f"{name}: {'already here' if before.found else 'fetched'}: {after.found}")
    if failed:
        raise UserError(f"could not fetch the weights of {', '.join(failed)} (see above); check the network, "
                        "or give a proxy in HTTPS_PROXY")
    return 0


def command(args) -> int:
    return _ls(args) if args.weights_command == "ls" else _fetch(args)

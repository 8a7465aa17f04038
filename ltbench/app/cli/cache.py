"""`ltbench cache ls | rm | verify`: the feature cache's entries."""


def register(commands):
    cache = commands.add_parser("cache", help="list or remove feature cache entries")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    cache_ls = cache_commands.add_parser("ls", help="one line per entry: key, kind, shape, size, date, inputs")
    cache_verify = cache_commands.add_parser("verify", help="check every entry against its checksum "
                                                            "(shape, dtype, content, finite values)")
    cache_rm = cache_commands.add_parser("rm", help="remove entries (.npy and .json together) and stray temp files")
    cache_rm.add_argument("keys", nargs="*", metavar="KEY_PREFIX", help="entries to remove, by key prefix")
    cache_rm.add_argument("--kind", help="only entries of this kind (image_features, image_tokens, "
                                         "text_classifier, temp)")
    cache_rm.add_argument("--older-than", type=float, metavar="DAYS", help="only entries not modified for DAYS days")
    cache_rm.add_argument("--all", action="store_true", help="allow removing every entry (with no other filter)")
    cache_rm.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    for cache_parser in (cache_ls, cache_rm, cache_verify):
        cache_parser.add_argument("--cache-dir", help="cache root (default: $LTBENCH_CACHE or ~/.cache/ltbench)")
    cache.set_defaults(handler=command)


def command(args) -> int:
    from ltbench.core.errors import UserError
    from ltbench.engine import cache_admin
    from ltbench.engine.cache import ArrayCache

    root = ArrayCache(args.cache_dir).root
    if root.exists() and not root.is_dir():
        raise UserError(f"cache folder {root} is a file, not a folder; pass --cache-dir DIR (or set LTBENCH_CACHE) "
                        "to the cache folder")
    if args.cache_command == "ls":
        print(cache_admin.list_report(root))
    elif args.cache_command == "verify":
        report, bad = cache_admin.verify_report(root)
        print(report)
        return 1 if bad else 0
    else:
        print(cache_admin.remove_report(root, args.keys, kind=args.kind, older_than_days=args.older_than,
                                        everything=args.all, dry_run=args.dry_run))
    return 0

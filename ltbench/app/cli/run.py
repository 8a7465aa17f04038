"""`ltbench run`: one method on one dataset, one record."""
from pathlib import Path

from ltbench.app.cli.common import add_data_options, add_runtime_options, run_request


def register(commands):
    run = commands.add_parser("run", help="run one method on one dataset and write its record")
    run.add_argument("--method", required=True)
    run.add_argument("--dataset", required=True)
    run.add_argument("--backbone", help="e.g. RN50:openai, ViT-B-16:openai, RN50:none, MODEL:/path/ckpt.pt, tiny")
    run.add_argument("--seed", type=int)
    add_data_options(run)
    run.add_argument("--out", default="results", help="results folder (default: results)")
    run.add_argument("--skip-existing", action="store_true", help="do nothing if this run's record exists")
    run.add_argument("--resume", action="store_true", help="continue training from the last epoch checkpoint")
    add_runtime_options(run)
    run.add_argument("--save-logits", nargs="?", const=True, default=False, metavar="FORMAT",
                     help="also save test / val logits beside the record (<record>.logits.npz), for "
                          "ensembles and post-hoc methods; FORMAT: float32 (default), float16 (half the "
                          "size, rounded) or topK, e.g. top10 (each image's K highest logits: not for "
                          "ensembles or post-hoc methods)")
    run.set_defaults(handler=command)


def command(args) -> int:
    from ltbench.app import runner
    from ltbench.config import resolve
    from ltbench.core import distributed
    from ltbench.core.versions import require_versions
    from ltbench.metrics import format_scores

    require_versions()  # an older torch / torchvision: one line before any work
    cfg = resolve(run_request(args))
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

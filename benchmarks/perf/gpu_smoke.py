"""A smoke check of ltbench on one machine's devices (run through gpu_smoke.sh): about 3 minutes
on one GPU, under a minute on the CPU (--device cpu, the CI check that the script still works).
One PASS / FAIL / SKIP line per check; the exit status is 1 when a check failed.

- deterministic: lift on digits_lt twice with deterministic=true (first, before CUDA starts in
  this process): both runs must succeed (no op without a deterministic kernel) and write
  bit-identical per-sample predictions;
- method NAME: every method `ltbench list methods` names, on digits_lt (tiny backbone) with
  --device, with short settings (SHORT); the record must name the device type, and on CUDA a
  peak device memory for its fit stage;
- ddp NAME (CUDA, 2 or more GPUs): ballad, decoder_bs and prompt_tuning again as a 2-process
  torchrun run, overall accuracy within --ddp-tolerance points of the 1-process run;
- cuda_contexts (same condition): the CUDA contexts per GPU that nvidia-smi lists while the
  2-process runs go: one per GPU (a process must not open contexts on its neighbours' GPUs);
- cmyk_jpeg: a tiny folder_lt dataset whose splits hold a CMYK and a progressive JPEG, zero-shot
  with gpu_jpeg on (CUDA: nvJPEG rejects CMYK, ltbench must decode it another way); on the CPU
  the same run decodes with Pillow and gpu_jpeg is a SKIP line.

Runs go in process (one interpreter for all methods: starting one per method would cost more
than most runs here); the torchrun runs are processes of their own. Everything is written under
--out (default: a new temporary folder): records, the feature cache, smoke.json with every check.
"""
import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

# Short settings for digits_lt (those of tests/methods/test_every_method.py): the methods whose
# digits defaults take long, and clip_ensemble's members; every other method runs as configured.
SHORT = {
    "ballad": ("phase_a.epochs=4", "phase_b.epochs=2"),
    "clip_ensemble": ("members=[zeroshot,linear_probe]",),
    "posthoc_la": ("source_options=[train.epochs=5]",),
    "posthoc_prior": ("source_options=[train.epochs=5]",),
    "posthoc_taunorm": ("source_options=[train.epochs=5]",),
    "clip_finetune": ("train.epochs=3",),
    "clip_finetune_bs": ("train.epochs=3",),
    "lift": ("train.epochs=2",),
    "tackle": ("teacher.ballad_options=[phase_a.epochs=4]", "train.epochs=3"),
}
DECODER_SHORT = ("stage1.iterations=30", "stage2.iterations=10")
DDP_METHODS = ("ballad", "decoder_bs", "prompt_tuning")
CHECKS = ("deterministic", "methods", "ddp", "cmyk_jpeg")


def short_options(method: str) -> tuple:
    if method in SHORT:
        return SHORT[method]
    return DECODER_SHORT if method == "decoder" or method.startswith("decoder_") else ()


class Report:
    """PASS / FAIL / SKIP lines as they happen, and smoke.json."""

    def __init__(self, out: Path, device: str):
        self.out, self.checks = out, []
        self.header = {"device": device, "out": str(out)}

    def add(self, status: str, name: str, detail: str = "", **facts):
        self.checks.append({"status": status, "check": name, "detail": detail, **facts})
        print(f"{status} {name}" + (f": {detail}" if detail else ""), flush=True)
        (self.out / "smoke.json").write_text(json.dumps({**self.header, "checks": self.checks}, indent=2) + "\n")

    @property
    def failed(self) -> list:
        return [check["check"] for check in self.checks if check["status"] == "FAIL"]


def ltbench(*args) -> tuple:
    """`ltbench ARGS` in this process: (exit code, stdout, stderr)."""
    from ltbench.app.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit:  # argparse
            code = exit.code if isinstance(exit.code, int) else 2
        except Exception:  # a crash is a failed check, not the end of the smoke run
            traceback.print_exc(file=sys.stderr)
            code = 1
    return code, stdout.getvalue(), stderr.getvalue()


def registered_methods() -> list:
    code, out, err = ltbench("list", "methods")
    if code != 0:
        raise RuntimeError(f"ltbench list methods failed: {err.strip()}")
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def record_of(stdout: str) -> dict:
    line = next(line for line in reversed(stdout.splitlines()) if line.startswith("record: "))
    return json.loads(Path(line.removeprefix("record: ")).read_text())


def run_method(args, method: str, out: Path, *options) -> tuple:
    """(record or None, seconds, error line)."""
    started = time.perf_counter()
    cfg = [*short_options(method), f"runtime.cache_dir={args.out / 'cache'}", *options]
    code, stdout, stderr = ltbench("run", "--method", method, "--dataset", "digits_lt", "--device", args.device,
                                   "--out", out, "--no-progress", "--cfg-options", *cfg)
    seconds = time.perf_counter() - started
    if code != 0:
        return None, seconds, last_line(stderr)
    return record_of(stdout), seconds, ""


def gib(value) -> str:
    return "n/a" if value is None else f"{value / 2 ** 30:.2f} GiB"


def check_deterministic(args, report: Report):
    """Two deterministic runs of lift: both succeed and agree to the bit (per-sample file hash)."""
    hashes = []
    for attempt in range(2):
        record, _, error = run_method(args, "lift", args.out / f"deterministic{attempt}", "deterministic=true")
        if record is None:
            return report.add("FAIL", "deterministic", f"run {attempt + 1}: {error}")
        if record["numerics"].get("deterministic") is not True:
            return report.add("FAIL", "deterministic", f"run {attempt + 1}'s record says it was not deterministic")
        hashes.append(record["per_sample"]["sha256"])
    same = hashes[0] == hashes[1]
    report.add("PASS" if same else "FAIL", "deterministic",
               "two deterministic lift runs, bit-identical predictions" if same else
               f"two deterministic lift runs differ: per-sample files {hashes[0][:12]} vs {hashes[1][:12]}")


def check_methods(args, report: Report) -> dict:
    """Every method on digits_lt; returns {method: record} of those that passed."""
    records = {}
    for method in args.methods:
        record, seconds, error = run_method(args, method, args.out / "results")
        if record is None:
            report.add("FAIL", f"method {method}", f"{seconds:.1f} s: {error}")
            continue
        devices, fit = record.get("devices", {}), record.get("stages", {}).get("fit", {})
        problem = None
        if devices.get("type") != args.device_type:
            problem = f"the record's devices say {devices.get('type')!r}, not {args.device_type}"
        elif args.device_type == "cuda" and not fit.get("peak_device_bytes"):
            problem = "no peak device memory recorded for its fit stage"
        detail = (f"{seconds:.1f} s, overall {record['metrics']['overall']:.2f}, fit {fit.get('precision')}, "
                  f"peak device {gib(fit.get('peak_device_bytes'))}, host {gib(fit.get('peak_host_bytes'))}")
        report.add("FAIL" if problem else "PASS", f"method {method}", problem or detail, seconds=round(seconds, 2))
        if not problem:
            records[method] = record
    return records


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _nvidia_smi(*query) -> list:
    try:
        result = subprocess.run(["nvidia-smi", *query, "--format=csv,noheader"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [[part.strip() for part in line.split(",")] for line in result.stdout.strip().splitlines() if line.strip()]


def _descendants(root: int) -> set:
    """root and every process below it (Linux /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found


class ContextWatch:
    """Polls nvidia-smi while a launch runs: the (GPU, pid) compute contexts of its processes."""

    def __init__(self, root_pid: int):
        self.root, self.seen, self.unfiltered, self.stop = root_pid, set(), set(), threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self):
        while not self.stop.is_set():
            ours = _descendants(self.root)
            for uuid, pid in (row[:2] for row in _nvidia_smi("--query-compute-apps=gpu_uuid,pid") if len(row) >= 2):
                if pid.isdigit():
                    self.unfiltered.add((uuid, int(pid)))
                    if int(pid) in ours:
                        self.seen.add((uuid, int(pid)))
            self.stop.wait(0.5)

    def finish(self) -> dict:
        """{gpu uuid: contexts} (the run's processes; every listed one when the pids are from
        another pid namespace, as in some containers)."""
        self.stop.set()
        self.thread.join()
        pairs = self.seen or self.unfiltered
        counts = {}
        for uuid, _ in pairs:
            counts[uuid] = counts.get(uuid, 0) + 1
        return counts


def check_ddp(args, report: Report, single: dict):
    if args.device_type != "cuda":
        report.add("SKIP", "ddp", "CUDA only (2 or more GPUs)")
        return report.add("SKIP", "cuda_contexts", "CUDA only (2 or more GPUs)")
    gpus = visible_gpus()
    if gpus < 2:
        report.add("SKIP", "ddp", f"{gpus} GPU visible, 2 needed")
        return report.add("SKIP", "cuda_contexts", f"{gpus} GPU visible, 2 needed")
    contexts = {}
    for method in DDP_METHODS:
        if method not in single:
            report.add("FAIL", f"ddp {method}", "no 1-process record to compare with (its method check failed)")
            continue
        cfg = [*short_options(method), f"runtime.cache_dir={args.out / 'cache'}"]
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   "-m", "ltbench", "run", "--method", method, "--dataset", "digits_lt", "--device", "cuda",
                   "--out", str(args.out / "ddp"), "--no-progress", "--cfg-options", *cfg]
        started = time.perf_counter()
        with open(args.out / f"ddp_{method}.log", "w") as log:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
            watch = ContextWatch(process.pid)
            try:
                stdout, _ = process.communicate(timeout=args.ddp_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, _ = process.communicate()
            for uuid, count in watch.finish().items():
                contexts[uuid] = max(contexts.get(uuid, 0), count)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            report.add("FAIL", f"ddp {method}", f"exit {process.returncode} after {seconds:.0f} s; see "
                                                f"{args.out / f'ddp_{method}.log'}")
            continue
        ddp = record_of(stdout)
        one, two = single[method]["metrics"]["overall"], ddp["metrics"]["overall"]
        close = abs(one - two) <= args.ddp_tolerance
        report.add("PASS" if close else "FAIL", f"ddp {method}",
                   f"2 processes overall {two:.2f} vs 1 process {one:.2f} (tolerance {args.ddp_tolerance}), "
                   f"{seconds:.0f} s", one_process=one, two_processes=two)
    if not contexts:
        return report.add("SKIP", "cuda_contexts", "nvidia-smi listed no compute process")
    crowded = {uuid: count for uuid, count in contexts.items() if count > 1}
    report.add("FAIL" if crowded else "PASS", "cuda_contexts",
               f"contexts per GPU {sorted(contexts.values())}" + (" (more than one on a GPU: a process opened "
                                                                   "contexts beside its own)" if crowded else ""),
               contexts=contexts)


def write_cmyk_dataset(root: Path) -> list:
    """A two-class folder_lt dataset of small JPEGs, a CMYK and a progressive one in each split;
    returns the --cfg-options that describe it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "names.txt").write_text("zero\none\n")
    for split in ("train", "test"):
        lines = []
        for label in range(2):
            for index in range(3):
                path = root / "img" / f"{split}_{label}_{index}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
                image = Image.fromarray(pixels).resize((80, 60), Image.BILINEAR)
                if label == 0 and index == 0:
                    image.convert("CMYK").save(path, "JPEG", quality=90)
                else:
                    image.save(path, "JPEG", quality=90, progressive=index == 1)
                lines.append(f"img/{path.name} {label}\n")
        (root / f"{split}.txt").write_text("".join(lines))
    return [f"dataset.root={root}", f"dataset.split_dir={root}", "dataset.train_list=train.txt",
            "dataset.test_list=test.txt", "dataset.classnames=names.txt"]


def check_cmyk_jpeg(args, report: Report):
    root = args.out / "cmyk_dataset"
    options = write_cmyk_dataset(root)
    gpu_jpeg = args.device_type == "cuda"
    if not gpu_jpeg:
        report.add("SKIP", "gpu_jpeg", "CUDA only: the CMYK dataset runs with Pillow below")
    started = time.perf_counter()
    code, stdout, stderr = ltbench("run", "--method", "zeroshot_clip", "--dataset", "folder_lt", "--backbone", "tiny",
                                   "--device", args.device, "--out", args.out / "cmyk", "--no-progress", "--cfg-options",
                                   *options, f"gpu_jpeg={'true' if gpu_jpeg else 'false'}",
                                   f"runtime.cache_dir={args.out / 'cache'}", "runtime.num_workers=0")
    name = "cmyk_jpeg " + ("(gpu_jpeg)" if gpu_jpeg else "(Pillow)")
    if code != 0:
        return report.add("FAIL", name, last_line(stderr))
    record = record_of(stdout)
    report.add("PASS", name, f"{time.perf_counter() - started:.1f} s, a CMYK and a progressive JPEG in each split, "
                             f"overall {record['metrics']['overall']:.2f}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--out", type=Path, help="results folder (default: a new temporary folder)")
    parser.add_argument("--methods", help="comma-separated methods (default: every one `ltbench list methods` names)")
    parser.add_argument("--checks", default=",".join(CHECKS), help=f"which of {', '.join(CHECKS)}")
    parser.add_argument("--ddp-tolerance", type=float, default=1.0,
                        help="overall accuracy points a 2-process run may differ by (digits_lt test: 0.33 an image)")
    parser.add_argument("--ddp-timeout-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    args.checks = [name for name in args.checks.split(",") if name]
    unknown = set(args.checks) - set(CHECKS)
    if unknown:
        parser.error(f"unknown checks {sorted(unknown)}; choose among {', '.join(CHECKS)}")
    args.device_type = args.device.split(":")[0]
    if args.device_type not in ("cuda", "cpu"):
        parser.error(f"--device {args.device}: cuda, cuda:N or cpu")
    args.out = (args.out or Path(tempfile.mkdtemp(prefix="ltbench-gpu-smoke-"))).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    report = Report(args.out, args.device)
    print(f"gpu_smoke on {args.device}, results in {args.out}", flush=True)
    started = time.perf_counter()
    single = {}

    def methods():
        args.methods = args.methods.split(",") if args.methods else registered_methods()
        if "ddp" in args.checks:  # the 1-process runs the 2-process ones are compared with
            args.methods += [method for method in DDP_METHODS if method not in args.methods]
        single.update(check_methods(args, report))

    # First: deterministic mode must start before CUDA does in this process (CUBLAS_WORKSPACE_CONFIG).
    steps = {"deterministic": lambda: check_deterministic(args, report), "methods": methods,
             "ddp": lambda: check_ddp(args, report, single), "cmyk_jpeg": lambda: check_cmyk_jpeg(args, report)}
    for name in CHECKS:
        if name in args.checks or (name == "methods" and "ddp" in args.checks):
            try:
                steps[name]()
            except Exception as error:  # a broken check is a failed one; the others still run
                report.add("FAIL", name, f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}")
    failed = report.failed
    print(f"gpu_smoke: {len(report.checks) - len(failed)} of {len(report.checks)} checks passed or skipped, "
          f"{len(failed)} failed{' (' + ', '.join(failed) + ')' if failed else ''}, "
          f"{time.perf_counter() - started:.0f} s; {args.out / 'smoke.json'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

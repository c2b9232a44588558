"""Command line of fastpe: the ``fastpe`` script (pyproject's
[project.scripts]) and ``python -m fastpe``.

    fastpe bench [--quick] [--json PATH] [--plot PATH] [--threads N] [--repeat N]
    fastpe info          (also: fastpe config, its earlier name)
    fastpe --version
"""

import argparse
import sys


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


DESCRIPTION = (
    "fastpe: positional encodings of Transformer models computed by OpenMP kernels and fused into NumPy "
    "arrays and PyTorch tensors in place, with float64 angles: sinusoidal encodings and model presets, "
    "learned tables, 2-D/n-D sin-cos grids, rotary embeddings (RoPE) with Hugging Face's scalings, and "
    "ALiBi and T5 attention biases."
)


def _version():
    # the package's own number, without importing the compiled kernels
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fastpe")
    except PackageNotFoundError:  # imported from a folder on sys.path, not installed
        import fastpe

        return fastpe.__version__


def build_parser(prog="fastpe"):
    """The parser, and {command: its subparser} (to report a subcommand's errors with its own usage)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = sub.add_parser(
        "bench",
        help="time fastpe against what users write instead, fastpe.reference and a memory-bandwidth probe",
        description=(
            "Time fastpe against its peers, what users write instead (NumPy; torch, torch.compile, "
            "ONNX Runtime and IPEX where installed), its NumPy reference and a bandwidth probe "
            "(x += c / t[:] = c on the same array). Prints a table to stdout, progress to stderr. "
            "The default run measures for about a minute, plus its set-up (torch.compile compiles "
            "every case first, seconds each); --quick leaves torch.compile out and takes well under "
            "a minute on a quiet machine. A case measured on a busy machine is measured again, then "
            "shown as busy or noisy."
        ),
    )
    bench.add_argument("--quick", action="store_true",
                       help="fewer repeats, smaller and fewer cases, no torch.compile")
    bench.add_argument("--json", metavar="PATH",
                       help="also write every figure, the samples and the measured sources' digests as JSON "
                            "(what tools/render_figures.py renders the documentation's figures from)")
    bench.add_argument("--plot", metavar="PATH",
                       help="also write a PNG chart: fastpe's time over the fastest peer's and its %% of the "
                            "bandwidth probe, per case (needs matplotlib)")
    bench.add_argument("--threads", metavar="N", type=_positive_int,
                       help="num_threads for fastpe and the probe (default: OpenMP's max threads)")
    bench.add_argument("--repeat", metavar="N", type=_positive_int,
                       help="samples per case for fastpe and the probe (default 20, --quick 5); "
                            "the reference gets fewer on large cases")

    info = sub.add_parser("info", aliases=["config"],
                          help="print fastpe.show_config(): version, OpenMP, threads, SIMD, build flags",
                          description="Print fastpe.show_config().")
    return parser, {"bench": bench, "info": info, "config": info}


def main(argv=None, prog="fastpe"):
    parser, commands = build_parser(prog)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse would print the top-level usage; the subcommand's own is the one that helps
        where = commands.get(args.command, parser)
        where.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in ("info", "config"):
        import fastpe

        fastpe.show_config()
        return 0

    from fastpe import bench

    if args.plot and not bench.matplotlib_available():
        # fail before spending a minute measuring
        commands["bench"].error(bench.PLOT_MISSING)
    report = bench.run(quick=args.quick, threads=args.threads, repeat=args.repeat)
    print(bench.format_report(report), flush=True)
    if args.json:
        bench.write_json(report, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        bench.plot(report, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0

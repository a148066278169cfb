"""The jobs: one module per command.  Each exposes `add_arguments(parser)` and
`run(ctx, args) -> JobResult`, and stays thin: it reads through the I/O layer, calls
pure transforms, writes through the I/O layer, and reports."""

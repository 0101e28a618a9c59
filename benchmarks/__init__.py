"""Side-by-side benchmarks for ffrtmp-infra.

Run ``python -m benchmarks`` (all suites) or ``python -m benchmarks ratelimit``;
add ``--write`` to refresh the suite's section of ``docs/benchmarks.md``.
Each suite is a module ``benchmarks/suite_<name>.py`` with a
``run(quick: bool) -> list[Table]`` function.
"""

"""Placeholder for the quickstart of the reference master and workers (issue 6).

Until the reference system lands, this only checks that the library imports.
"""

from __future__ import annotations

import sys


def main() -> int:
    import ffrtmp_infra
    import ffrtmp_infra.ratelimit
    import ffrtmp_infra.resources
    import ffrtmp_infra.tracing

    print(f"ffrtmp-infra {ffrtmp_infra.__version__}: the reference quickstart is not built yet.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

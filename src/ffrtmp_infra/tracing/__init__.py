"""ffrtmp_infra.tracing (public API lands with its issue)."""

__all__: list[str] = []

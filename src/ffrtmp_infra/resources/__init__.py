"""ffrtmp_infra.resources (public API lands with its issue)."""

__all__: list[str] = []

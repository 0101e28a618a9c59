"""ffrtmp_infra.ratelimit (public API lands with its issue)."""

__all__: list[str] = []

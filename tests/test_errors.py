"""One error vocabulary: every subpackage's errors share one root and one ConfigurationError."""

from __future__ import annotations

import pytest

from ffrtmp_infra import errors, ratelimit, resources, tracing


def test_one_configuration_error_for_every_subpackage() -> None:
    assert ratelimit.ConfigurationError is errors.ConfigurationError
    assert tracing.ConfigurationError is errors.ConfigurationError
    assert issubclass(errors.ConfigurationError, ValueError)


@pytest.mark.parametrize(
    "error",
    [
        ratelimit.StorageUnavailableError,
        resources.ResourceError,
        resources.InvalidAmountError,
        resources.BackendUnavailableError,
        errors.ConfigurationError,
        errors.MissingExtraError,
    ],
)
def test_every_error_derives_from_the_package_root(error: type[Exception]) -> None:
    assert issubclass(error, errors.FfrtmpInfraError)


def test_missing_extra_is_an_import_error_naming_the_extra() -> None:
    exc = errors.MissingExtraError("RedisBackend", "redis", "redis-py")
    assert isinstance(exc, ImportError)
    assert "pip install 'ffrtmp-infra[redis]'" in str(exc)
    assert (exc.feature, exc.extra, exc.package) == ("RedisBackend", "redis", "redis-py")
    assert tracing.MissingDependencyError is errors.MissingExtraError
    assert ratelimit.MissingExtraError is resources.MissingExtraError is errors.MissingExtraError


def test_invalid_limiter_raises_the_shared_configuration_error() -> None:
    with pytest.raises(errors.FfrtmpInfraError, match="rate"):
        ratelimit.Limiter(-1, 2)

"""One error tree (portal.errors) and one boundary that maps it to HTTP (portal.web.errors)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import portal
from portal.errors import Failure, PortalError, Refusal
from portal.exchange.errors import ReviewNotOpen, TypeRefused
from portal.uploads.errors import PartChecksumMismatch, UploadExpired, VersionUnsupported
from portal.web.errors import STATUS, status_of

# Not errors of the portal: private signals that never leave their module, the stream's
# "the reader went away", and the command line's own click exceptions.
OUTSIDE = {"ClientGone", "UsageFailure", "CheckFailure"}


def _portal_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(portal.__path__, "portal."):
        if module_info.name.startswith(("portal.migrations", "portal.__main__")):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
                and name not in OUTSIDE
            ):
                found[f"{value.__module__}.{name}"] = value
    return [found[key] for key in sorted(found)]


EXCEPTIONS = _portal_exceptions()


@pytest.mark.parametrize("error", EXCEPTIONS, ids=lambda error: error.__qualname__)
def test_every_error_of_the_portal_is_in_the_one_tree(error: type[BaseException]) -> None:
    assert issubclass(error, PortalError)


@pytest.mark.parametrize("error", EXCEPTIONS, ids=lambda error: error.__qualname__)
def test_no_error_carries_an_http_status(error: type[BaseException]) -> None:
    assert not hasattr(error, "status")
    assert not hasattr(error, "status_code")


@pytest.mark.parametrize(
    "error",
    [e for e in EXCEPTIONS if issubclass(e, Refusal)],
    ids=lambda error: error.__qualname__,
)
def test_every_refusal_has_a_status_at_the_boundary(error: type[Refusal]) -> None:
    status = status_of(error.__new__(error))
    assert status is not None and 400 <= status < 500


def test_the_statuses_tus_defines_are_mapped_at_the_boundary() -> None:
    assert status_of(PartChecksumMismatch()) == 460
    assert status_of(VersionUnsupported()) == 412
    assert status_of(UploadExpired()) == 410
    assert status_of(ReviewNotOpen("closed")) == 409
    assert status_of(TypeRefused("no")) == 415


def test_a_failure_of_the_server_has_no_status_of_its_own() -> None:
    assert status_of(Failure("disk on fire")) is None
    assert Failure not in STATUS

"""Shared pytest fixtures live in tests/fixtures/ and are registered here (root conftest)."""

pytest_plugins: list[str] = [
    "tests.fixtures.gitrepos",
    "tests.fixtures.cliprocess",
    "tests.fixtures.objectstores",
    "tests.fixtures.controlplanes",
    "tests.fixtures.story",
    "tests.fixtures.faultproxy",
]
